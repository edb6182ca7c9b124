"""Settings chosen by the data: a small training set trains longer unless the user decided,
and a resumed run accepts what the data suggested to it."""

from __future__ import annotations

from types import SimpleNamespace

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from pipeline.config.schemas import typed
from pipeline.data.data_config import DataConfig
from pipeline.model.checkpoint import Checkpoint
from pipeline.run.resume import config_differences
from pipeline.run.runner import run
from pipeline.tasks.classification import SMALL_TRAIN_ROWS, ClassificationTask
from tests.run.test_runner import composed, toy_reviews


def task_with_rows(rows: int) -> ClassificationTask:
    task = ClassificationTask.__new__(ClassificationTask)
    task.train_rows = rows
    return task


def test_small_training_sets_are_suggested_more_epochs_and_patience():
    small = {s.key: s.value for s in task_with_rows(8_528).suggested_settings()}
    assert small == {"trainer.max_epochs": 30, "trainer.patience": 4}
    assert task_with_rows(SMALL_TRAIN_ROWS).suggested_settings() == []


def test_a_run_applies_records_and_prints_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outputs/manual/ goes here
    in_tmp = tmp_path
    train = toy_reviews(in_tmp / "train.csv", rows=200)
    # max_epochs set by the user (not the default): it stays; patience was left: it changes.
    cfg = composed("data=files", f"data.train={train}", "trainer.max_epochs=1")
    result = run(cfg)
    out = capsys.readouterr().out
    assert "settings suggested by the data (160 training texts" in out
    assert "trainer.patience=4" in out and "trainer.max_epochs=30" not in out
    saved = OmegaConf.load(result.output_dir / "config.yaml")
    assert saved.trainer.patience == 4 and saved.trainer.max_epochs == 1


def test_resume_accepts_what_the_data_suggested():
    current = {"trainer": {"patience": 2, "max_epochs": 6}, "encoder": {"name": "lstm"}}
    saved = {"trainer": {"patience": 4, "max_epochs": 6}, "encoder": {"name": "lstm"}}
    assert config_differences(saved, current, {"trainer.patience": 4}) == []
    # without the record, or when the user now gives another value, it is a difference
    assert config_differences(saved, current) == ["trainer.patience: 4 -> 2"]
    current["trainer"]["patience"] = 3
    assert config_differences(saved, current, {"trainer.patience": 4}) == [
        "trainer.patience: 4 -> 3"
    ]


def suggested_by(data_cfg: DataConfig, init_from: object = None) -> dict[str, object]:
    task = task_with_rows(SMALL_TRAIN_ROWS)
    task.data_cfg = data_cfg
    task.ctx = SimpleNamespace(init_from=init_from)
    return {s.key: s.value for s in task.suggested_settings()}


def test_imdb_suggests_reading_both_ways_but_not_to_a_model_from_a_language_model():
    imdb = typed(DataConfig, composed("data=imdb").data, "data")
    assert imdb.suggested == {"encoder.bidirectional": True}
    assert suggested_by(imdb) == {"encoder.bidirectional": True}
    # model.init_from: the tokenizer, embedding and encoder are the language model's
    assert suggested_by(imdb, init_from=object()) == {}
    both = DataConfig(name="x", suggested={"encoder.bidirectional": True, "trainer.patience": 9})
    assert suggested_by(both, init_from=object()) == {"trainer.patience": 9}
    sst2 = typed(DataConfig, composed("data=sst2").data, "data")
    assert suggested_by(sst2) == {}


def test_a_data_preset_suggestion_applies_where_the_encoder_has_the_key(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    train = toy_reviews(tmp_path / "train.csv", rows=200)
    fast = ["trainer.progress=none", "tracking=none", "embedding.dim=16"]
    for encoder, reads_both_ways in (("lstm", True), ("cnn", None)):  # cnn: no such key
        with initialize_config_module(config_module="conf", version_base=None):
            chosen = [f"encoder={encoder}", "data=files", f"data.train={train}"]
            cfg = compose(config_name="config", overrides=[*fast, *chosen])
        with open_dict(cfg):
            cfg.data.suggested = {"encoder.bidirectional": True}
        result = run(cfg)
        out = capsys.readouterr().out
        said = "settings suggested by data=files: encoder.bidirectional=True" in out
        assert said == bool(reads_both_ways)
        saved = OmegaConf.load(result.output_dir / "config.yaml")
        assert saved.encoder.get("bidirectional") == reads_both_ways
        weights = Checkpoint.load(result.output_dir / "best.pt").model
        backward = [k for k in weights if k.startswith("encoder.layers.0.1.")]
        assert bool(backward) == bool(reads_both_ways)
