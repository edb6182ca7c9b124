"""The trained classifier on raw text, from one real quick training run: the MLflow pyfunc
model (in a fresh process and behind a real `mlflow models serve`), the shared loader, the
registry (`tracking.register_as`) and `python -m pipeline predict`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from tests.cli import run_pipeline
from tests.servers import answers
from tests.test_end_to_end import QUICK, free_port, pipeline

REGISTERED = "sst2-serving-test"
TEXTS = [
    "a moving, beautifully acted and wonderful film",
    "dull, boring and far too long",
    "",  # an empty text is a row with no token, not an error
    "the plot",
]
COLUMNS = ["label", "p_negative", "p_positive"]
#: Payloads the served model refuses (HTTP 400), and words its message has.
BAD_PAYLOADS = [
    ({"dataframe_records": [{"stars": 3, "review": "a great film"}]}, ["text"]),
    ({"dataframe_split": {"columns": ["id", "review"], "data": [[1, "fine"]]}}, ["text"]),
    ({"dataframe_records": [{"text": "fine"}, {"text": None}]}, ["row 1", "text"]),
    ({"dataframe_records": [{"text": "fine"}, {"text": 3}]}, ["row 1", "text"]),
    ({"dataframe_records": [{"text": 3}, {"text": 4}]}, ["text"]),
    ({"dataframe_records": [{"text": True}]}, ["text"]),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir, hf_cache) -> dict:
    """One quick real run, logged and registered in its own SQLite store."""
    cwd = tmp_path_factory.mktemp("serving")
    env = {
        **os.environ,
        "PIPELINE_DATA_DIR": str(data_dir),
        "HF_DATASETS_CACHE": str(hf_cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = pipeline(cwd, env, *QUICK, f"tracking.register_as={REGISTERED}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (checkpoint,) = cwd.glob("outputs/*/*/best.pt")
    run_id = next(
        line.split()[2]
        for line in done.stdout.splitlines()
        if line.strip().startswith("mlflow run")
    )
    (model_uri,) = re.findall(r"model: logged (runs:/[^\s,]+)", done.stdout)
    return {
        "cwd": cwd,
        "env": env,
        "store": f"sqlite:///{cwd / 'mlflow.db'}",
        "run_id": run_id,
        "model_uri": model_uri,  # runs:/<run id>/<run name>: the model is named after its run
        "checkpoint": checkpoint,
        "stdout": done.stdout,
    }


def predict_cli(trained: dict, *args: str) -> subprocess.CompletedProcess:
    return run_pipeline("predict", *args, cwd=trained["cwd"], env=trained["env"], timeout=180)


def check_probabilities(records: list[dict]) -> None:
    for record in records:
        assert record["label"] in ("negative", "positive")
        assert abs(record["p_negative"] + record["p_positive"] - 1.0) < 1e-5
        assert record["label"] == max(("negative", "positive"), key=lambda k: record[f"p_{k}"])


# -- the logged pyfunc model -------------------------------------------------------------


def test_run_logs_and_registers_the_model(trained):
    from mlflow import MlflowClient

    out = trained["stdout"]
    from mlflow import MlflowClient as Client

    name = Client(tracking_uri=trained["store"]).get_run(trained["run_id"]).info.run_name
    assert f"model: logged runs:/{trained['run_id']}/{name}" in out  # named after its run
    assert f"registered as models:/{REGISTERED}/1" in out
    version = MlflowClient(tracking_uri=trained["store"]).get_model_version(REGISTERED, "1")
    assert version.run_id == trained["run_id"]


def test_pyfunc_model_predicts_raw_text_in_a_fresh_process(trained):
    script = f"""
import json, mlflow, pandas as pd
mlflow.set_tracking_uri({trained["store"]!r})
model = mlflow.pyfunc.load_model("{trained["model_uri"]}")
out = model.predict(pd.DataFrame({{"id": range({len(TEXTS)}), "text": {TEXTS!r}}}))
meta = model.metadata
print(json.dumps({{
    "columns": list(out.columns),
    "records": out.to_dict(orient="records"),
    "inputs": meta.get_input_schema().to_dict(),
    "outputs": meta.get_output_schema().to_dict(),
    "example": meta.load_input_example(mlflow.artifacts.download_artifacts(
        "{trained["model_uri"]}")).to_dict(orient="list"),
    "labels": meta.metadata["labels"],
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=trained["cwd"],
        env=trained["env"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["columns"] == COLUMNS
    records = result["records"]
    assert len(records) == len(TEXTS)
    check_probabilities(records)
    assert records[0]["p_positive"] > records[1]["p_positive"]
    assert result["inputs"] == [{"type": "string", "name": "text", "required": True}]
    assert [c["name"] for c in result["outputs"]] == COLUMNS
    assert [c["type"] for c in result["outputs"]] == ["string", "double", "double"]
    assert list(result["example"]) == ["text"]
    assert all(isinstance(t, str) for t in result["example"]["text"])
    assert result["labels"] == ["negative", "positive"]


def test_pyfunc_model_reads_the_text_column_and_refuses_anything_else(trained):
    """Other columns are ignored, wherever they stand; a payload without ``text`` or with a
    text that is not a string is MLflow's bad-input error (HTTP 400 when served)."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from pipeline.inference.serving import load_classifier

    expected = load_classifier(trained["checkpoint"]).predict(TEXTS)
    mlflow.set_tracking_uri(trained["store"])
    model = mlflow.pyfunc.load_model(trained["model_uri"])
    ids = list(range(len(TEXTS)))
    for frame in (
        pd.DataFrame({"id": ids, "text": TEXTS}),
        pd.DataFrame({"text": TEXTS, "stars": [5] * len(TEXTS)}),
    ):
        out = model.predict(frame)
        assert list(out["label"]) == list(expected["label"])
        assert (out["p_positive"] - expected["p_positive"]).abs().max() < 1e-6
    for bad, words in (
        (pd.DataFrame({"stars": [3], "review": ["a great film"]}), ["'text'"]),
        (["a list without a column name"], ["'text'"]),
        (pd.DataFrame({"text": ["fine", None]}), ["row 1", "'text'", "missing"]),
        (pd.DataFrame({"text": ["fine", 3]}), ["row 1", "'text'", "3"]),
        (pd.DataFrame({"text": ["fine", False]}), ["row 1", "'text'", "False"]),
        (pd.DataFrame({"text": [1.5, 2.5]}), ["text"]),
    ):
        with pytest.raises(MlflowException) as error:
            model.predict(bad)
        assert error.value.get_http_status_code() == 400
        for word in words:
            assert word in error.value.message, (bad, error.value.message)


def test_mlflow_models_serve_answers_invocations(trained):
    from pipeline.inference.serving import load_classifier

    expected = load_classifier(trained["checkpoint"]).predict(TEXTS)
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            trained["model_uri"],
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=trained["cwd"],
        env={**trained["env"], "MLFLOW_TRACKING_URI": trained["store"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its uvicorn child goes down with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while not answers(f"{base}/ping"):
            assert server.poll() is None, "mlflow models serve exited"
            assert time.time() < deadline, "mlflow models serve did not answer /ping in 180 s"
            time.sleep(0.5)
        print(f"mlflow models serve answered /ping after {time.perf_counter() - started:.1f}s")

        def post(body: dict) -> tuple[int, dict]:
            request = urllib.request.Request(
                f"{base}/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:
                    return reply.status, json.load(reply)
            except urllib.error.HTTPError as error:
                return error.code, json.load(error)

        def invoke(body: dict) -> list[dict]:
            status, answer = post(body)
            assert status == 200, answer
            return answer["predictions"]

        ids = list(range(len(TEXTS)))
        by_inputs = invoke({"inputs": {"text": TEXTS}})
        by_list = invoke({"inputs": TEXTS})  # one column: MLflow names it text
        by_split = invoke({"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}})
        by_records = invoke({"dataframe_records": [{"text": t} for t in TEXTS]})
        with_ids = invoke(
            {
                "dataframe_split": {
                    "columns": ["id", "text"],
                    "data": [[i, t] for i, t in zip(ids, TEXTS, strict=True)],
                }
            }
        )
        for predictions in (by_inputs, by_list, by_split, by_records, with_ids):
            assert [list(p) for p in predictions] == [COLUMNS] * len(TEXTS)
            check_probabilities(predictions)
            assert [p["label"] for p in predictions] == list(expected["label"])
            for p, positive in zip(predictions, expected["p_positive"], strict=True):
                assert abs(p["p_positive"] - positive) < 1e-6
        for body, words in BAD_PAYLOADS:
            status, answer = post(body)
            assert status == 400, (body, status, answer)
            for word in words:
                assert word in answer["message"], (body, answer["message"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


# -- the shared loader --------------------------------------------------------------------


def test_checkpoint_records_its_tokenizer(trained):
    from pipeline.model.checkpoint import load_checkpoint

    payload = load_checkpoint(trained["checkpoint"])
    assert Path(payload["tokenizer_dir"]) == (trained["checkpoint"].parent / "tokenizer").resolve()


def test_classifier_batches_by_length_and_keeps_the_input_order(trained):
    from pipeline.inference.serving import load_classifier

    classifier = load_classifier(trained["checkpoint"])
    assert classifier.labels == ["negative", "positive"]
    assert classifier.run_id == trained["run_id"]  # the checkpoint records its MLflow run
    assert classifier.max_length == classifier.config["data"]["max_length"]
    assert not classifier.model.training
    long_text = " ".join(["a wonderful film"] * 200)  # far beyond max_length tokens
    texts = [*TEXTS, long_text, "", "bad"] * 3
    one_batch = classifier.predict_proba(texts, batch_size=256)
    small_batches = classifier.predict_proba(texts, batch_size=2, progress=True)
    assert one_batch.shape == (len(texts), 2)
    assert (one_batch - small_batches).abs().max() < 1e-5
    assert (one_batch.sum(dim=1) - 1).abs().max() < 1e-5
    alone = classifier.predict_proba(["bad"])
    assert (alone[0] - one_batch[len(TEXTS) + 2]).abs().max() < 1e-5
    cut = " ".join(["a wonderful film"] * 100)  # longer than max_length too: the same cut
    assert (classifier.predict_proba([cut])[0] - one_batch[len(TEXTS)]).abs().max() < 1e-5
    assert classifier.predict_proba([]).shape == (0, 2)
    frame = classifier.predict(texts[:4])
    assert list(frame.columns) == COLUMNS and len(frame) == 4


def test_loader_refuses_what_it_cannot_load(trained, tmp_path):
    from pipeline.inference.serving import load_classifier

    with pytest.raises(PipelineError, match="not a file"):
        load_classifier(tmp_path / "nope")
    with pytest.raises(PipelineError, match="Checkpoint not found"):
        load_classifier(tmp_path / "missing.pt")
    with pytest.raises(PipelineError, match="no MLflow store"):
        load_classifier("0" * 32, tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")
    moved = tmp_path / "elsewhere" / "best.pt"
    moved.parent.mkdir()
    moved.write_bytes(trained["checkpoint"].read_bytes())
    loaded = load_classifier(moved)  # the tokenizer folder recorded in the checkpoint
    assert loaded.labels == ["negative", "positive"]


def test_predict_from_mlflow_runs_no_code_stored_with_the_model(trained, tmp_path):
    """The model's code file in the store is never run by predict (from a run id, the
    registry or a model folder): the classifier is rebuilt from its artifacts."""
    from pipeline.inference.serving import load_classifier

    (folder,) = [p.parent for p in (trained["cwd"] / "mlruns").rglob("MLmodel")]
    (code,) = folder.glob("*.py")
    original, marker = code.read_text(), tmp_path / "code-ran"
    try:
        code.write_text(f"open({str(marker)!r}, 'w')\n" + original)
        for reference in (trained["run_id"], f"models:/{REGISTERED}/1", folder):
            classifier = load_classifier(reference, tracking_uri=trained["store"])
            assert not marker.exists(), reference
            assert classifier.labels == ["negative", "positive"]
            assert classifier.run_id == trained["run_id"]
    finally:
        code.write_text(original)


# -- python -m pipeline predict --------------------------------------------------------


def test_predict_from_run_id_checkpoint_and_registry_agree(trained):
    texts = trained["cwd"] / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    outputs = {}
    for name, model in (
        ("run", trained["run_id"]),
        ("checkpoint", str(trained["checkpoint"])),
        ("registry", f"models:/{REGISTERED}/1"),
    ):
        out = trained["cwd"] / f"from_{name}.jsonl"
        done = predict_cli(trained, f"model={model}", f"input={texts}", f"output={out}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"wrote {len(TEXTS)} predictions" in done.stdout
        outputs[name] = out.read_text()
    assert outputs["run"] == outputs["checkpoint"] == outputs["registry"]
    records = [json.loads(line) for line in outputs["run"].splitlines()]
    assert [r["text"] for r in records] == TEXTS
    assert list(records[0]) == ["text", "label", "confidence", "p_negative", "p_positive"]
    check_probabilities(records)


def test_predict_reads_txt_csv_jsonl_and_writes_csv_jsonl(trained, tmp_path, capsys):
    import pandas as pd

    from pipeline.inference.predict import main

    model = f"model={trained['checkpoint']}"
    (tmp_path / "in.txt").write_text("\n".join(TEXTS))
    pd.DataFrame({"id": range(len(TEXTS)), "review": TEXTS}).to_csv(tmp_path / "in.csv")
    (tmp_path / "in.jsonl").write_text(
        "\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(TEXTS)) + "\n\n"
    )
    main([model, f"input={tmp_path / 'in.txt'}", f"output={tmp_path / 'a.csv'}"])
    main(
        [
            model,
            f"input={tmp_path / 'in.csv'}",
            "text_column=review",
            f"output={tmp_path / 'b.csv'}",
        ]
    )
    main([model, f"input={tmp_path / 'in.jsonl'}", f"output={tmp_path / 'c' / 'c.jsonl'}"])
    a = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "b.csv", keep_default_na=False)
    c = pd.read_json(tmp_path / "c" / "c.jsonl", lines=True)
    assert list(a.columns) == ["text", "label", "confidence", "p_negative", "p_positive"]
    assert list(a["text"]) == TEXTS
    for other in (b, c):
        assert list(other["label"]) == list(a["label"])
        assert (other["p_positive"] - a["p_positive"]).abs().max() < 1e-6
    assert (a["confidence"] - a[["p_negative", "p_positive"]].max(axis=1)).abs().max() < 1e-9

    capsys.readouterr()
    main([model, f"text={TEXTS[0]}", "text=" + "word " * 40, "batch_size=1", "device=cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["label", "confidence", "text"]
    assert len(lines) == 3 and lines[1].split()[0] == a["label"][0]
    assert lines[1].rstrip().endswith(TEXTS[0]) and lines[2].endswith("...")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["text=hello"], "needs model="),
        (["model=best.pt"], "needs texts"),
        (["model=best.pt", "input=missing.txt"], "no such file"),
        (["model=best.pt", "text=hi", "output=out.parquet"], "unknown file type '.parquet'"),
        (["model=best.pt", "text=hi", "batchsize=2"], "Did you mean 'batch_size'"),
        (["model=best.pt", "text=hi", "output=/proc/nope/out.csv"], "cannot be written"),
    ],
)
def test_predict_argument_errors_are_one_line(args, message, capsys, monkeypatch):
    """Through the command line's own entry point (in-process: these fail before any model
    loads; the subprocess test below covers the rest)."""
    from pipeline.__main__ import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_predict_input_errors_are_one_line(trained, tmp_path):
    bad_csv = tmp_path / "reviews.csv"
    bad_csv.write_text("id,review\n1,great\n")
    folder = tmp_path / "predictions.csv"
    folder.mkdir()
    model = f"model={trained['checkpoint']}"
    for args, message in (
        ([model, f"input={bad_csv}"], "has no column 'text'"),
        ([model, "text=hi", f"output={bad_csv}/out.csv"], f"{bad_csv} is a file, not a folder"),
        ([model, "text=hi", f"output={folder}"], f"output={folder} is a folder"),
        (["model=no_such_model", "text=hi"], "is not a file"),
        ([f"model={trained['run_id'][::-1]}", "text=hi"], "Cannot load the model"),
    ):
        done = predict_cli(trained, *args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("error: ") and message in done.stderr
