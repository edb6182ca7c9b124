"""``task=lm`` on a labelled data set's texts (``data.as_corpus``) and backward language
models (``data.reverse``), in process on toy reviews (tests/run/test_runner.py's helpers)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import datasets
import pytest
import torch

from pipeline.data.data_config import to_config
from pipeline.data.documents import STREAM_FILE, check_resumed_direction, document_ids, end_id
from pipeline.data.fingerprint import DataChanged, split_digest
from pipeline.data.labelled import load_data
from pipeline.data.tokenize import fit_tokenizer, load_tokenizer, tokenize
from pipeline.errors import ConfigError
from pipeline.run.runner import run
from pipeline.tasks.language_model import LanguageModelTask
from tests.run.test_runner import composed, toy_reviews

WORD_LM = ["task=lm", "tokenizer=word", "tokenizer.eos=true", "trainer.max_epochs=1"]
WORD_LM += ["trainer.bptt=8", "trainer.batch_size=4", "task.sample_tokens=0"]


@pytest.fixture()
def reviews(tmp_path, monkeypatch) -> list[str]:
    """The data=files overrides of 300 toy reviews (validation and test carved, seeded)."""
    monkeypatch.chdir(tmp_path)
    return ["data=files", f"data.train={toy_reviews(tmp_path / 'train.csv', rows=300)}"]


def saved(result) -> dict:
    return torch.load(result.best_checkpoint, weights_only=True)


def test_the_lm_reads_exactly_the_classifiers_train_and_validation_texts(reviews):
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", "seed=7")
    checkpoint = saved(run(cfg))
    classifier = load_data(to_config(cfg.data), seed=7).splits  # what task=sentiment reads
    recorded = checkpoint["data"]["splits"]
    for split in ("train", "validation", "test"):
        texts = classifier[split].select_columns(["text"])
        assert recorded[split] == {"rows": len(texts), "sha256": split_digest(texts)}, split
    assert checkpoint["stream"] == {"reverse": False, "as_corpus": ["train"], "transductive": False}


def test_train_and_test_trains_on_the_test_texts_too_and_says_so(reviews, capsys):
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=[train,test]")
    checkpoint = saved(run(cfg))
    splits = checkpoint["data"]["splits"]
    plain = load_data(to_config(cfg.data), seed=int(cfg.seed)).splits
    assert splits["train"]["rows"] == len(plain["train"]) + len(plain["test"])
    assert splits["test"]["rows"] == len(plain["test"])  # still evaluated
    assert checkpoint["stream"]["transductive"] is True
    assert "transductive" in capsys.readouterr().out


def test_whole_texts_are_read_and_each_ends_with_eos(reviews, capsys):
    """data.max_length (a classifier's truncation) does not cut the language model's texts:
    the test perplexity is over every token of the test reviews, <eos> included."""
    cfg = composed(*WORD_LM, *reviews, "data.as_corpus=train", "data.max_length=3")
    result = run(cfg)
    tokenizer = load_tokenizer(result.output_dir / "tokenizer")
    test = load_data(to_config(cfg.data), seed=int(cfg.seed)).splits["test"]["text"]
    ids = [tokenizer.encode(text) for text in test]
    assert all(len(row) > 3 and row[-1] == tokenizer.eos_id for row in ids)
    out = capsys.readouterr().out
    counted = int(re.search(r"test: perplexity \S+ over ([\d,]+) tokens", out)[1].replace(",", ""))
    assert counted == sum(map(len, ids)) - 1  # every token but the first is a target


def test_lm_on_labelled_data_asks_for_as_corpus_and_an_eos(reviews):
    with pytest.raises(ConfigError, match=r"data\.as_corpus=train"):
        LanguageModelTask(composed(*WORD_LM, *reviews))
    with pytest.raises(ConfigError, match=r"tokenizer\.eos=true"):
        LanguageModelTask(
            composed(*WORD_LM, *reviews, "data.as_corpus=train", "tokenizer.eos=false")
        )
    with pytest.raises(ConfigError, match=r"\[train,test\]"):
        LanguageModelTask(composed(*WORD_LM, *reviews, "data.as_corpus=test"))


def test_a_reversed_stream_is_each_document_reversed_with_its_eos_last(tmp_path):
    texts = ["the film was great", "dull plot", "", "a", "the actors were great and fine"]
    tokenizer = fit_tokenizer({"name": "word", "eos": True, "min_freq": 1}, texts)
    split = tokenize(
        datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}),
        tokenizer,
        None,
    ).splits["train"]
    eos = tokenizer.eos_id
    rows = [tokenizer.encode(text) for text in texts]
    expected = [i for row in rows for i in [*reversed(row[:-1]), eos]]
    assert document_ids(split, True, eos).tolist() == expected
    assert document_ids(split, False, eos).tolist() == [i for row in rows for i in row]
    assert (
        document_ids(split.select(range(1, 4)), True, eos).tolist()
        == expected[len(rows[0]) : -len(rows[4])]
    )  # a slice
    no_end = [i for row in rows for i in reversed(row)]
    assert document_ids(split, True, None).tolist() == no_end


def test_a_backward_run_is_recorded_as_backward(reviews):
    result = run(composed(*WORD_LM, *reviews, "data.as_corpus=train", "data.reverse=true"))
    checkpoint = saved(result)
    assert checkpoint["stream"]["reverse"] is True and checkpoint["data"]["reverse"] is True
    stream = json.loads((result.output_dir / "tokenizer" / STREAM_FILE).read_text())
    assert stream["reverse"] is True
    assert checkpoint["config"]["data"]["reverse"] is True  # hence the run's param


def test_a_reversed_character_stream_keeps_each_line_end_last():
    texts = ["ab\n", "cde\n", "f"]
    tokenizer = fit_tokenizer({"name": "char"}, texts)
    split = tokenize(
        datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}),
        tokenizer,
        None,
    ).splits["train"]
    stream = document_ids(split, True, end_id(tokenizer, char_level=True))
    assert tokenizer.decode(stream.tolist()) == "ba\nedc\nf"


def test_resuming_in_the_other_direction_is_refused():
    backward = SimpleNamespace(data={"reverse": True}, finished=False)
    forward = SimpleNamespace(data={"source": "x"}, finished=False)  # before data.reverse
    check_resumed_direction(backward, True, "outputs/run")
    check_resumed_direction(forward, False, "outputs/run")
    with pytest.raises(DataChanged, match=r"backward language model and data\.reverse=false"):
        check_resumed_direction(backward, False, "outputs/run")
    with pytest.raises(DataChanged, match=r"Resume with data\.reverse=false"):
        check_resumed_direction(forward, True, "outputs/run")
