"""The data stage on the real offline copies in ../shared/data, and on the user's own files."""

from __future__ import annotations

import collections
import csv
import dataclasses
import gzip
import json
import shutil
import time
from pathlib import Path

import pytest

from pipeline.data.data_config import DataConfig, SplitSource, preset
from pipeline.data.labelled import load_data
from pipeline.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
PRESETS = ["imdb", "sst2", "mr", "trec", "ag_news"]

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no {SHARED_DATA}")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Tests choose their own data root; none inherits one from the shell."""
    monkeypatch.delenv("PIPELINE_DATA_DIR", raising=False)


def col(dataset, name):
    """A column as a plain list (datasets 5 returns a lazy Column)."""
    return list(dataset[name])


def counts(dataset, labels):
    return {labels[i]: n for i, n in sorted(collections.Counter(col(dataset, "label")).items())}


# ------------------------------------------------------------------------------------------
# Config


def test_every_field_has_help_text():
    for cls in (DataConfig, SplitSource):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_interface_defaults():
    config = DataConfig(name="x")
    assert config.dir is None
    assert config.max_length == 400
    assert config.max_train_samples is None and config.max_eval_samples is None
    assert config.validation_fraction == 0.1


@pytest.mark.parametrize(
    "values, match",
    [
        ({"name": "x", "max_length": 0}, "data.max_length=0 is too small"),
        ({"name": "x", "validation_fraction": 1.0}, "data.validation_fraction=1.0 is too large"),
        ({"name": "x", "validation_fraction": 0.0}, "must be > 0"),
        ({"name": "x", "max_train_samples": 0}, "data.max_train_samples=0"),
        ({"name": "x", "trian": "a.csv"}, "Unknown key data.trian. Did you mean 'train'"),
        ({"name": "x", "max_length": "long"}, "data.max_length"),
        ({"name": "x", "local_splits": {"train": {"pth": "a"}}}, "Did you mean 'path'"),
        ({"name": "x", "local_splits": {"dev": {"path": "a"}}}, "Unknown split"),
        ({"dir": "/data"}, "data.name is required"),
    ],
)
def test_bad_config_is_a_config_error(values, match):
    with pytest.raises(ConfigError, match=match):
        load_data(values, seed=0)


def test_files_without_train_says_what_is_needed():
    with pytest.raises(ConfigError, match=r"data\.train=/path/to/train\.csv"):
        load_data(preset("files"), seed=0)
    with pytest.raises(ConfigError, match=r"data\.train"):
        load_data(preset("files", test="test.csv"), seed=0)


# ------------------------------------------------------------------------------------------
# Presets on the local copy


@needs_data
def test_sst2_local():
    data = load_data(preset("sst2", dir=str(SHARED_DATA)), seed=0)
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": 67_349,
        "validation": 872,
        "test": 1_821,
    }
    assert data.labels == ["negative", "positive"]
    assert counts(data.splits["test"], data.labels) == {"negative": 912, "positive": 909}
    assert counts(data.splits["validation"], data.labels) == {"negative": 428, "positive": 444}
    assert data.source.startswith("local:") and "sst2_glue" in data.source
    train = data.splits["train"]
    assert train.column_names == ["text", "label"]
    assert train.features["text"].dtype == "string" and train.features["label"].dtype == "int64"
    assert train[0]["text"] == "hide new secretions from the parental units"  # stripped


@needs_data
def test_imdb_local_full():
    start = time.perf_counter()
    data = load_data(preset("imdb", dir=str(SHARED_DATA)), seed=0)
    took = time.perf_counter() - start
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 22_500, "validation": 2_500, "test": 25_000}
    assert data.labels == ["neg", "pos"]
    assert counts(data.splits["test"], data.labels) == {"neg": 12_500, "pos": 12_500}
    train_and_val = counts(data.splits["train"], data.labels)
    for label, n in counts(data.splits["validation"], data.labels).items():
        train_and_val[label] += n
    assert train_and_val == {"neg": 12_500, "pos": 12_500}
    assert took < 30, f"loading IMDb took {took:.1f} s"


@needs_data
def test_trec_local():
    data = load_data(preset("trec", dir=str(SHARED_DATA)), seed=0)
    assert data.labels == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert len(data.splits["test"]) == 500
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 5_452
    assert len(data.splits["validation"]) == round(0.1 * 5_452)
    assert counts(data.splits["test"], data.labels) == {
        "ABBR": 9,
        "DESC": 138,
        "ENTY": 94,
        "HUM": 65,
        "LOC": 81,
        "NUM": 113,
    }


@needs_data
def test_mr_local_uses_folds():
    data = load_data(preset("mr", dir=str(SHARED_DATA)), seed=0)
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 8_528, "validation": 1_066, "test": 1_068}
    assert data.labels == ["negative", "positive"]
    assert counts(data.splits["test"], data.labels) == {"negative": 534, "positive": 534}
    # The folds are disjoint.
    assert not set(col(data.splits["test"], "text")) & set(col(data.splits["validation"], "text"))


@needs_data
def test_ag_news_local_is_split_80_10_10():
    data = load_data(preset("ag_news", dir=str(SHARED_DATA)), seed=0)
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 6_080, "validation": 760, "test": 760}
    assert data.labels == ["World", "Sports", "Business", "Sci/Tech"]
    total = collections.Counter()
    for split in data.splits.values():
        total.update(counts(split, data.labels))
    assert total == {"World": 1_900, "Sports": 1_900, "Business": 1_900, "Sci/Tech": 1_900}
    first = col(data.splits["train"], "text")[0]
    assert first and first == first.strip()
    # title + " " + description: the first row of test.csv is among the three splits.
    wanted = (
        "Fears for T N pension after talks Unions representing workers at Turner   Newall say "
        "they are 'disappointed' after talks with stricken parent firm Federal Mogul."
    )
    assert any(wanted in col(split, "text") for split in data.splits.values())


@needs_data
@pytest.mark.parametrize("name", PRESETS)
def test_fingerprints_stable_and_subsampling(name):
    cfg = preset(name, dir=str(SHARED_DATA), max_train_samples=200, max_eval_samples=50)
    first = load_data(cfg, seed=1)
    second = load_data(cfg, seed=1)
    assert {k: len(v) for k, v in first.splits.items()} == {
        "train": 200,
        "validation": 50,
        "test": 50,
    }
    for split in ("train", "validation", "test"):
        assert first.splits[split]._fingerprint == second.splits[split]._fingerprint
        assert col(first.splits[split], "text") == col(second.splits[split], "text")
    assert first.labels == second.labels
    other = load_data(cfg, seed=2)
    assert other.splits["train"]._fingerprint != first.splits["train"]._fingerprint
    assert col(other.splits["train"], "text") != col(first.splits["train"], "text")


@needs_data
def test_data_dir_from_environment(monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(SHARED_DATA))
    data = load_data(preset("trec", max_train_samples=10), seed=0)
    assert data.source.startswith(f"local:{SHARED_DATA}")
    assert len(data.splits["train"]) == 10


@needs_data
def test_compose_with_hydra():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(overrides=["+data=mr", f"data.dir={SHARED_DATA}", "data.max_eval_samples=7"])
    data = load_data(cfg.data, seed=0)
    assert len(data.splits["test"]) == 7 and data.labels == ["negative", "positive"]


# ------------------------------------------------------------------------------------------
# Errors: no data anywhere, wrong data root


def test_offline_without_local_copy_names_both_ways_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        load_data(preset("imdb"), seed=0)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "PIPELINE_DATA_DIR=/path/to/data" in message
    assert "data.dir=" in message
    assert "network" in message and "Hugging Face Hub" in message
    assert "stanfordnlp/imdb" in message
    assert "\n" not in message


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as error:
        load_data(preset("sst2", dir=str(missing)), seed=0)
    assert str(missing) in str(error.value) and "sst2_glue/train.tsv" in str(error.value)


def test_missing_preset_folder_in_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        load_data(preset("imdb"), seed=0)
    message = str(error.value)
    assert f"{tmp_path / 'imdb'} is missing" in message
    assert "imdb/train-*.jsonl.gz" in message and "imdb/test-*.jsonl.gz" in message


def test_missing_file_in_preset_folder(tmp_path):
    (tmp_path / "trec").mkdir()
    (tmp_path / "trec" / "train.tsv").write_text("text\tlabel\nWhat ?\tDESC\n")
    with pytest.raises(DataError, match=r"trec/test\.tsv is missing"):
        load_data(preset("trec", dir=str(tmp_path)), seed=0)


# ------------------------------------------------------------------------------------------
# data=files


ROWS = [
    (f"text number {i} {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg") for i in range(40)
]


def write(path: Path, rows, header=("text", "label")) -> Path:
    """Write rows in the format the extension names (gzipped when it ends in .gz)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    plain = path.with_name(name)
    if name.endswith(".csv"):
        with open(plain, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    elif name.endswith(".tsv"):
        lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
        plain.write_text("\n".join(lines) + "\n")
    elif name.endswith(".jsonl"):
        plain.write_text(
            "".join(json.dumps(dict(zip(header, row, strict=True))) + "\n" for row in rows)
        )
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {h: [row[i] for row in rows] for i, h in enumerate(header)}
        pq.write_table(pa.table(columns), plain)
    elif name.endswith(".txt"):
        plain.write_text("".join(row[0] + "\n" for row in rows))
    if path != plain:
        with open(plain, "rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return path


def files(tmp_path, **values):
    return preset("files", cache_dir=str(tmp_path / "hf-cache"), **values)


@pytest.mark.parametrize(
    "suffix",
    [".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz", ".tsv.gz", ".jsonl.gz", ".parquet.gz"],
)
def test_user_files_every_format(tmp_path, suffix):
    train = write(tmp_path / f"train{suffix}", ROWS)
    test = write(tmp_path / f"test{suffix}", [('a "quoted" text', "pos"), ("NA", "neg")])
    data = load_data(files(tmp_path, train=str(train), test=str(test)), seed=0)
    assert data.labels == ["neg", "pos"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 36, "validation": 4, "test": 2}
    assert col(data.splits["test"], "text") == ['a "quoted" text', "NA"]
    assert col(data.splits["test"], "label") == [1, 0]
    assert data.splits["train"].column_names == ["text", "label"]
    assert data.source == f"local:{train}, {test}"
    all_train = sorted(col(data.splits["train"], "text") + col(data.splits["validation"], "text"))
    assert all_train == sorted(text for text, _ in ROWS)


def test_user_files_relative_paths_and_carved_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "train.csv", ROWS)
    cfg = files(tmp_path, train="train.csv", validation_fraction=0.25)
    data = load_data(cfg, seed=0)
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": 20,
        "validation": 10,
        "test": 10,
    }
    texts = [t for split in data.splits.values() for t in col(split, "text")]
    assert sorted(texts) == sorted(text for text, _ in ROWS)  # nothing dropped or duplicated
    again = load_data(cfg, seed=0)
    for split in data.splits:
        assert data.splits[split]._fingerprint == again.splits[split]._fingerprint


def test_user_files_integer_labels_sort_numerically(tmp_path):
    rows = [(f"t{i}", [2, 10, 1][i % 3]) for i in range(30)]
    train = write(tmp_path / "train.jsonl", rows)
    data = load_data(files(tmp_path, train=str(train)), seed=0)
    assert data.labels == ["1", "2", "10"]
    train_split = data.splits["train"]
    for text, label in zip(col(train_split, "text"), col(train_split, "label"), strict=True):
        assert data.labels[label] == str([2, 10, 1][int(text[1:]) % 3])


def test_user_files_custom_columns(tmp_path):
    rows = [(f"review {i}", "yes" if i % 3 else "no", i) for i in range(20)]
    train = write(tmp_path / "train.csv", rows, header=("review", "liked", "id"))
    cfg = files(tmp_path, train=str(train), text_column="review", label_column="liked")
    data = load_data(cfg, seed=0)
    assert data.labels == ["no", "yes"]
    assert data.splits["validation"].column_names == ["text", "label"]


def test_user_files_missing_column(tmp_path):
    train = write(tmp_path / "train.csv", ROWS, header=("txt", "label"))
    with pytest.raises(DataError) as error:
        load_data(files(tmp_path, train=str(train)), seed=0)
    message = str(error.value)
    assert "'text'" in message and str(train) in message
    assert "txt, label" in message and "Did you mean 'txt'" in message
    assert "data.text_column" in message

    with pytest.raises(DataError, match="'labels'.*Did you mean 'label'"):
        load_data(files(tmp_path, train=str(train), text_column="txt", label_column="labels"), 0)


def test_user_files_unseen_label(tmp_path):
    train = write(tmp_path / "train.csv", ROWS)
    test = write(tmp_path / "test.csv", [("fine", "pos"), ("meh", "neutral")])
    with pytest.raises(DataError, match="'neutral'") as error:
        load_data(files(tmp_path, train=str(train), test=str(test)), seed=0)
    assert str(test) in str(error.value) and "test" in str(error.value)


def test_user_files_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="does not exist") as error:
        load_data(files(tmp_path, train=str(missing)), seed=0)
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("name", ["train.txt", "train.txt.gz"])
def test_user_text_file_has_no_labels(tmp_path, name):
    train = write(tmp_path / name, ROWS)
    with pytest.raises(DataError, match="labels") as error:
        load_data(files(tmp_path, train=str(train)), seed=0)
    assert "CSV" in str(error.value) and "JSON Lines" in str(error.value)


def test_user_files_unknown_extension(tmp_path):
    train = tmp_path / "train.xlsx"
    train.write_text("x")
    with pytest.raises(DataError, match="extension '.xlsx'"):
        load_data(files(tmp_path, train=str(train)), seed=0)


def test_user_files_empty_label(tmp_path):
    train = write(tmp_path / "train.csv", ROWS + [("no label here", "")])
    with pytest.raises(DataError, match="no label"):
        load_data(files(tmp_path, train=str(train)), seed=0)


def test_user_files_subsampling(tmp_path):
    train = write(tmp_path / "train.csv", ROWS)
    cfg = files(tmp_path, train=str(train), max_train_samples=5, max_eval_samples=2)
    data = load_data(cfg, seed=0)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 5, "validation": 2, "test": 2}
    big = load_data(files(tmp_path, train=str(train), max_train_samples=10_000), seed=0)
    assert len(big.splits["train"]) == 32  # a limit above the size keeps everything


@pytest.mark.parametrize("name", PRESETS + ["files"])
def test_presets_list_every_key(name):
    """Plain YAML presets are struct nodes: a key they lack cannot be overridden (data.dir=...)."""
    from omegaconf import OmegaConf

    keys = set(OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml"))
    assert keys == {f.name for f in dataclasses.fields(DataConfig)}
    assert preset(name).name == name
