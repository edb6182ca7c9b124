"""``data.corpus_extra``: more training text for ``task=lm`` on a labelled data set's texts,
never the classifier's validation or test texts (toy reviews in tmp dirs, in process)."""

from __future__ import annotations

import csv
import gzip
import json
from types import SimpleNamespace

import pytest
import torch

from pipeline.data.data_config import to_config
from pipeline.data.documents import STREAM_FILE, load_texts
from pipeline.data.extra_texts import ExtraTexts, HeldOut, words
from pipeline.data.fingerprint import split_digest
from pipeline.data.labelled import load_data
from pipeline.errors import ConfigError, DataError
from pipeline.run.runner import run
from pipeline.tasks.classification import ClassificationTask
from pipeline.tasks.language_model import LanguageModelTask, _record_extra
from tests.run.test_runner import composed, toy_reviews
from tests.tasks.test_lm_on_labelled_texts import WORD_LM


@pytest.fixture()
def reviews(tmp_path, monkeypatch) -> list[str]:
    """The data=files overrides of 300 toy reviews (as test_lm_on_labelled_texts.py's)."""
    monkeypatch.chdir(tmp_path)
    return ["data=files", f"data.train={toy_reviews(tmp_path / 'train.csv', rows=300)}"]


NEW = ["zebra quokka xylophone narwhal", "quokka zebra marimba", "narwhal marimba zebra"]


def held_out(cfg, seed: int = 42) -> dict[str, list[str]]:
    """The main data set's validation and test texts, as the classifier reads them."""
    splits = load_data(to_config(cfg.data), seed).splits
    return {name: list(splits[name]["text"]) for name in ("validation", "test")}


def disguised(text: str) -> str:
    """The same text as another corpus may write it: cased and spaced differently."""
    return "  " + text.upper().replace(" ", "  ") + " ."


def extra_file(tmp_path, lines: list[str]):
    path = tmp_path / "extra.txt"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def test_extra_texts_reach_the_train_stream_only_and_evaluation_texts_are_dropped(
    reviews, tmp_path, capsys
):
    base = composed(*WORD_LM, *reviews, "data.as_corpus=train")
    held = held_out(base)
    overlap = [disguised(held["validation"][0]), disguised(held["test"][1])]
    overlap.append(f"{held['test'][2]} and then a second sentence")  # holds a test text
    path = extra_file(tmp_path, [*NEW, *overlap])
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", f"data.corpus_extra=[{path}]")
    result = run(cfg)
    checkpoint = torch.load(result.best_checkpoint, weights_only=True)
    plain = load_data(to_config(cfg.data), seed=42).splits
    recorded = checkpoint["data"]["splits"]
    assert recorded["train"]["rows"] == len(plain["train"]) + len(NEW)  # overlap dropped
    for split in ("validation", "test"):  # untouched: the classifier's own
        texts = plain[split].select_columns(["text"])
        assert recorded[split] == {"rows": len(texts), "sha256": split_digest(texts)}
    source = {"name": str(path), "documents": len(NEW), "dropped": len(overlap)}
    assert checkpoint["stream"]["corpus_extra"] == [source]
    stream = json.loads((result.output_dir / "tokenizer" / STREAM_FILE).read_text())
    assert stream["corpus_extra"] == [source] and stream["as_corpus"] == ["train"]
    out = capsys.readouterr().out
    assert f"dropped {len(overlap)} that are or contain a validation or test text" in out


def test_extra_documents_come_after_the_main_train_texts(reviews, tmp_path):
    path = extra_file(tmp_path, NEW)
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", f"data.corpus_extra=[{path}]")
    config = to_config(cfg.data)
    corpus, _, extra = load_texts(config, 42, "")
    train = list(load_data(config, 42).splits["train"]["text"])
    assert list(corpus.splits["train"]["text"]) == train + NEW
    assert extra.dropped == 0


def test_a_transductive_run_keeps_test_texts_but_still_drops_validation_texts(reviews, tmp_path):
    base = composed(*WORD_LM, *reviews, "data.as_corpus=train")
    held = held_out(base)
    path = extra_file(tmp_path, [disguised(held["test"][0]), disguised(held["validation"][0])])
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=[train,test]", f"data.corpus_extra=[{path}]")
    _, transductive, extra = load_texts(to_config(cfg.data), 42, "")
    assert transductive
    assert extra.sources[0]["documents"] == 1 and extra.dropped == 1
    assert words(extra.texts[0]) == words(held["test"][0])


def test_a_data_config_name_adds_all_its_splits_texts(reviews, tmp_path, monkeypatch):
    """``mr``: every fold of a (toy) mr/mr.tsv under $PIPELINE_DATA_DIR, less the documents
    that hold an evaluation text of the main data set."""
    held = held_out(composed(*WORD_LM, *reviews, "data.as_corpus=train"))
    rows = [(f"{NEW[i % 3]} number{i}", i % 2, i % 10) for i in range(40)]
    rows.append((disguised(held["validation"][3]), 0, 5))
    (tmp_path / "data" / "mr").mkdir(parents=True)
    with (tmp_path / "data" / "mr" / "mr.tsv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerows([("text", "label", "fold"), *rows])
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path / "data"))
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", "data.corpus_extra=[mr]")
    _, _, extra = load_texts(to_config(cfg.data), 42, "")
    assert extra.sources == [{"name": "mr", "documents": 40, "dropped": 1}]
    assert sorted(extra.texts) == sorted(text for text, _, _ in rows[:40])


def test_texts_are_compared_as_words_the_way_sst_tokenises_mr():
    assert words("It's so (very) good, isn't it? Won't cannot") == words(
        "it 's so -lrb- very -rrb- good , is n't it ? wo n't can not"
    )
    held = HeldOut(["a gentle , moving film .", "what 's next"])
    assert held.found_in("A gentle, moving film.")
    assert held.found_in("a gentle , moving film . and a sad one .")  # SST split it in two
    assert held.found_in("what's next")  # a short text: only when it is the whole document
    assert not held.found_in("what's next ? another sequel")
    assert not held.found_in("a gentle , moving story")


def test_the_run_records_what_was_added_and_dropped_as_params(capsys):
    logged = {}
    tracker = SimpleNamespace(log_params=logged.update)
    extra = ExtraTexts(
        sources=[
            {"name": "mr", "documents": 8, "dropped": 2},
            {"name": "x.txt", "documents": 3, "dropped": 0},
        ]
    )
    _record_extra(SimpleNamespace(tracker=tracker), extra, "sst2", transductive=False)
    assert logged == {"corpus_extra_documents": "mr:8,x.txt:3", "corpus_extra_dropped": 2}
    assert "dropped 2 that are or contain a validation or test text of data=sst2" in (
        capsys.readouterr().out
    )


def test_corpus_extra_errors_are_clear(reviews, tmp_path):
    lm = [*WORD_LM, *reviews, "data.as_corpus=train"]
    with pytest.raises(ConfigError, match=r"unknown data config 'mrr'.*mr"):
        load_texts(to_config(composed(*lm, "data.corpus_extra=[mrr]").data), 42, "")
    with pytest.raises(ConfigError, match=r"data=ptb is not a labelled data set"):
        load_texts(to_config(composed(*lm, "data.corpus_extra=[ptb]").data), 42, "")
    missing = tmp_path / "nowhere" / "extra.txt"
    with pytest.raises(DataError, match=r"nowhere/extra\.txt is no file"):
        load_texts(to_config(composed(*lm, f"data.corpus_extra=[{missing}]").data), 42, "")
    path = extra_file(tmp_path, NEW)
    with pytest.raises(ConfigError, match=r"data\.as_corpus is not set: add data\.as_corpus"):
        LanguageModelTask(composed(*WORD_LM, *reviews, f"data.corpus_extra=[{path}]"))
    with pytest.raises(ConfigError, match=r"data\.corpus_extra only shape.*task=lm"):
        ClassificationTask(composed(*reviews, f"data.corpus_extra=[{path}]"))


def test_a_gzipped_file_reads_as_its_text(reviews, tmp_path):
    """``.gz`` (PTB ships ``ptb.train.txt.gz``) is read through gzip; a file that only ends in
    .gz is a clear error."""
    packed = tmp_path / "extra.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(NEW) + "\n\n")
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", f"data.corpus_extra=[{packed}]")
    _, _, extra = load_texts(to_config(cfg.data), 42, "")
    assert extra.texts == NEW and extra.sources[0]["documents"] == len(NEW)
    fake = tmp_path / "plain.gz"
    fake.write_text("not gzipped\n", encoding="utf-8")
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", f"data.corpus_extra=[{fake}]")
    with pytest.raises(DataError, match=r"cannot read .*plain\.gz as UTF-8 text.*\.gz"):
        load_texts(to_config(cfg.data), 42, "")
