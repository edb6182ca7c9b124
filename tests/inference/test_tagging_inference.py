"""A trained tagger after its run: ``predict`` (raw text and CoNLL-U, in and out),
``evaluate`` (the run's metrics again), the logged MLflow pyfunc model, and bad inputs, all
from one tiny real tagging run in this process (CoNLL-U files written here, a char-aware
embedding, tracked to a SQLite store)."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.inference.tagger import TRAIN_WORDS
from pipeline.run.runner import run
from tests.cli import in_process
from tests.run.test_runner import composed

LEXICON = {"the": "DET", "a": "DET", "dog": "NOUN", "cat": "NOUN", "sees": "VERB"}
LEXICON |= {"runs": "VERB", "well-known": "ADJ", "don't": "AUX", "it's": "PRON", ".": "PUNCT"}
#: Words with hyphens and apostrophes: each must stay one word with one tag.
SENTENCE = "the well-known dog don't see it's cat ."


def conllu_file(path, n: int, seed: int, extra: tuple[str, ...] = ()) -> str:
    """CoNLL-U sentences (a multiword range and comments included) whose tag is a function
    of the word, so two epochs learn most of them."""
    rng = random.Random(seed)
    words, blocks = list(LEXICON) + list(extra), []
    for number in range(n):
        sentence = rng.choices(words, k=rng.randint(2, 7))
        lines = [
            f"# sent_id = s{number}",
            f"# text = {' '.join(sentence)}",
            "1-2\tx\t_\t_\t_\t_\t_\t_\t_\t_",
        ]
        for i, word in enumerate(sentence, 1):
            tag = LEXICON.get(word, "NOUN")
            lines.append(f"{i}\t{word}\t_\t{tag}\t{tag.lower()}\t_\t_\t_\t_\t_")
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, mlflow_store) -> dict:
    """One tiny tagging run (2 epochs, char-aware words), its model logged to ``mlflow_store``."""
    folder = tmp_path_factory.mktemp("tagger")
    files = {
        "train": conllu_file(folder / "train.conllu", 80, 0),
        "validation": conllu_file(folder / "dev.conllu", 15, 1),
        "test": conllu_file(folder / "test.conllu", 20, 2, extra=("unseen-word", "zebra's")),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        cfg = composed(
            "task=tagging",
            "data=files",
            *(f"data.{split}={path}" for split, path in files.items()),
            "embedding=word_char",
            "tokenizer.min_freq=1",
            "trainer.max_epochs=2",
            "trainer.batch_size=8",
            "tracking=mlflow",
            f"tracking.uri={mlflow_store}",
        )
        result = run(cfg)
    return {
        "result": result,
        "run_id": result.run_id,
        "output_dir": folder / result.output_dir,
        "checkpoint": folder / result.best_checkpoint,
        "folder": folder,
        "files": files,
        "store": mlflow_store,
    }


def test_the_run_saves_its_training_words_for_oov(tagged):
    folder = tagged["output_dir"] / "tokenizer"
    words = set(json.loads((folder / TRAIN_WORDS).read_text(encoding="utf-8")))
    assert "well-known" in words and "unseen-word" not in words and "x" not in words


def test_predict_text_gives_one_tag_per_whitespace_word(tagged, capsys):
    labels = set(json.loads((tagged["output_dir"] / "tokenizer/labels.json").read_text()))
    checkpoint = str(tagged["checkpoint"])
    code, out, err = in_process(
        capsys, "predict", f"model={checkpoint}", f"text={SENTENCE}", "text=a b"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line, text in zip(lines, [SENTENCE, "a b"], strict=True):
        pairs = [item.rsplit("/", 1) for item in line.split(" ")]
        assert [word for word, _ in pairs] == text.split()
        assert all(tag in labels for _, tag in pairs)
    tagged_words = dict(item.rsplit("/", 1) for item in lines[0].split(" "))
    assert tagged_words["the"] == "DET" and tagged_words["."] == "PUNCT"  # it learned


def test_predict_a_conllu_file_writes_conllu_with_the_same_forms(tagged, capsys):
    import conllu

    out_path = tagged["folder"] / "predicted" / "test.conllu"
    code, _, err = in_process(
        capsys,
        "predict",
        f"model={tagged['run_id']}",
        f"tracking_uri={tagged['store']}",
        f"input={tagged['files']['test']}",
        f"output={out_path}",
    )
    assert code == 0, err
    source = conllu.parse(open(tagged["files"]["test"], encoding="utf-8").read())
    written = conllu.parse(out_path.read_text(encoding="utf-8"))
    assert len(written) == len(source)
    for before, after in zip(source, written, strict=True):
        forms = [t["form"] for t in before if isinstance(t["id"], int)]
        assert [t["form"] for t in after] == forms
        assert [t["id"] for t in after] == list(range(1, len(forms) + 1))
        assert after.metadata["sent_id"] == before.metadata["sent_id"]
    labels = json.loads((tagged["output_dir"] / "tokenizer/labels.json").read_text())
    for line in out_path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):  # the UPOS column as trained, the rest _
            columns = line.split("\t")
            assert columns[3] in labels and columns[2] == "_" and columns[4:] == ["_"] * 6


def test_evaluate_gives_the_runs_test_metrics(tagged, capsys):
    metrics = tagged["result"].metrics
    out_dir = tagged["folder"] / "evaluated"
    code, out, err = in_process(
        capsys,
        "evaluate",
        f"model={tagged['checkpoint']}",
        "data=files",
        f"data.test={tagged['files']['test']}",
        "tracking=none",
        f"output_dir={out_dir}",
    )
    assert code == 0, err
    printed = dict(line.split()[:2] for line in out.splitlines() if line.startswith("  test/"))
    for name in ("accuracy", "f1", "oov_accuracy", "loss"):
        assert float(printed[f"test/{name}"]) == pytest.approx(metrics[f"test/{name}"], abs=1e-4)
    assert (out_dir / "tag_report.json").is_file() and (out_dir / "confusion_matrix.png").is_file()


def test_the_logged_pyfunc_model_tags_raw_sentences(tagged):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tagged["store"])
    model = mlflow.pyfunc.load_model(f"runs:/{tagged['run_id']}/{_model_name(tagged)}")
    out = model.predict(pd.DataFrame({"text": [SENTENCE, "", "the cat"]}))
    assert list(out.columns) == ["tokens", "tags"] and len(out) == 3
    assert list(out["tokens"][0]) == SENTENCE.split() and len(out["tags"][0]) == 8
    assert list(out["tokens"][1]) == [] and list(out["tags"][1]) == []
    alone = model.predict(pd.DataFrame({"text": ["the cat"]}))  # the same, batched or not
    assert list(alone["tags"][0]) == list(out["tags"][2])


def test_the_served_model_answers_tokens_and_tags(tagged):
    """MLflow's scoring server's own request handling (what ``mlflow models serve`` runs per
    request), without starting a server: JSON in, JSON out, a bad payload refused (HTTP 400)."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    mlflow.set_tracking_uri(tagged["store"])
    model = mlflow.pyfunc.load_model(f"runs:/{tagged['run_id']}/{_model_name(tagged)}")
    schema = model.metadata.get_input_schema()

    def invoke(payload: dict) -> tuple[int, dict]:
        answer = scoring_server.invocations(json.dumps(payload), "application/json", model, schema)
        return answer.status, json.loads(answer.response)

    status, body = invoke({"dataframe_records": [{"text": SENTENCE}, {"text": "the cat"}]})
    assert status == 200, body
    rows = body["predictions"]
    assert [row["tokens"] for row in rows] == [SENTENCE.split(), ["the", "cat"]]
    assert [len(row["tags"]) for row in rows] == [8, 2]
    with pytest.raises(MlflowException, match="row 0") as refused:  # the server: HTTP 400
        invoke({"dataframe_records": [{"text": None}]})
    assert refused.value.get_http_status_code() == 400


def _model_name(tagged: dict) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tagged["store"])
    (logged,) = client.get_run(tagged["run_id"]).outputs.model_outputs
    return client.get_logged_model(logged.model_id).name


@pytest.mark.parametrize(
    "args, words",
    [
        (["text="], ["text #1 is empty"]),
        (["text=the dog", "text=   "], ["text #2 is empty"]),
        (["input={empty}"], ["holds no CoNLL-U sentences"]),
        (["input={bad}"], ["line 2", "10", "TAB"]),
        (["text=the dog", "output=out.csv"], [".conllu or .jsonl"]),
    ],
)
def test_bad_inputs_are_one_clear_error_line(tagged, capsys, args, words):
    folder = tagged["folder"]
    (folder / "empty.conllu").write_text("# sent_id = 1\n# text = nothing\n\n")
    (folder / "bad.conllu").write_text("1\tthe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tdog NOUN\n\n")
    paths = {"empty": folder / "empty.conllu", "bad": folder / "bad.conllu"}
    args = [a.format(**paths) for a in args]
    model = f"model={tagged['checkpoint']}"
    code, out, err = in_process(capsys, "predict", model, *args)
    assert code == 2 and not out
    assert (
        err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    )
    assert all(w in err for w in words), err


def test_a_tagger_refuses_labelled_data(tagged, capsys):
    checkpoint = f"model={tagged['checkpoint']}"
    code, _, err = in_process(capsys, "evaluate", checkpoint, "data=sst2", "tracking=none")
    assert code == 2 and "is not tagged data" in err and "tagging model" in err
