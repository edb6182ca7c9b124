"""The corpus (language-modelling) data stage on the real offline copies in ../shared/data."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.data.corpus import LoadedCorpus, load_corpus
from pipeline.data.corpus_config import CorpusConfig, corpus_presets, preset, to_corpus_config
from pipeline.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
PRESETS = ["timemachine", "tiny_shakespeare", "ptb", "wikitext2"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Tests choose their own data root; none inherits one from the shell."""
    monkeypatch.delenv("PIPELINE_DATA_DIR", raising=False)


def col(dataset, name="text"):
    return list(dataset[name])


def joined(dataset) -> str:
    return "".join(col(dataset))


def load(name, data_dir, hf_cache, **overrides) -> LoadedCorpus:
    return load_corpus(preset(name, dir=str(data_dir), cache_dir=str(hf_cache), **overrides), 0)


# ------------------------------------------------------------------------------------------
# Config


def test_every_field_has_help_text():
    for f in dataclasses.fields(CorpusConfig):
        assert f.metadata.get("help"), f"CorpusConfig.{f.name} has no help text"


def test_interface_defaults():
    config = CorpusConfig(name="x")
    assert config.type == "corpus" and config.dir is None and config.hub is None
    assert config.clean == "none" and config.line_end == "\n" and config.text_column == "text"
    assert config.validation_fraction == 0.1 and config.test_fraction is None
    assert config.max_train_lines is None and config.max_eval_lines is None


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_list_every_key(name):
    """Plain YAML presets are struct nodes: a key they lack cannot be overridden."""
    node = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
    assert set(node) == {f.name for f in dataclasses.fields(CorpusConfig)}
    config = to_corpus_config(node)
    assert config.name == name and config.type == "corpus"
    assert name in corpus_presets()


def test_classification_presets_are_not_corpora():
    assert "imdb" not in corpus_presets()
    node = OmegaConf.load(REPO / "conf" / "data" / "imdb.yaml")
    with pytest.raises(ConfigError, match="classification") as error:
        to_corpus_config(node)
    assert "tiny_shakespeare" in str(error.value) and "ptb" in str(error.value)


@pytest.mark.parametrize(
    "values, match",
    [
        ({"name": "x", "line_ends": ""}, r"Unknown key data\.line_ends\. Did you mean 'line_end'"),
        ({"name": "x", "max_train_line": 5}, "Did you mean 'max_train_lines'"),
        ({"name": "x", "clean": "letter"}, "data.clean='letter' is not a valid choice"),
        ({"name": "x", "type": "classification"}, "data.type"),
        ({"name": "x", "validation_fraction": 1.0}, "data.validation_fraction=1.0 is too large"),
        ({"name": "x", "validation_fraction": 0.0}, "must be > 0"),
        ({"name": "x", "validation_fraction": 0.5, "test_fraction": 0.5}, "sum must be < 1"),
        ({"name": "x", "max_eval_lines": 0}, "data.max_eval_lines=0 is too small"),
        ({"name": "x", "local_splits": {"dev": "a.txt"}}, "Unknown split data.local_splits.dev"),
        ({"name": "x", "local_splits": {"test": "a.txt"}}, "no train split"),
        ({"dir": "/data"}, "data.name is required"),
    ],
)
def test_bad_config_is_a_config_error(values, match):
    with pytest.raises(ConfigError, match=match):
        to_corpus_config(values)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="Did you mean 'timemachine'"):
        preset("timemachin")


# ------------------------------------------------------------------------------------------
# The presets on the local copies


def test_timemachine_d2l_counts(data_dir, hf_cache):
    corpus = load("timemachine", data_dir, hf_cache)
    assert set(corpus.splits) == {"train", "validation"}
    assert corpus.source == f"local:{data_dir / 'timemachine' / 'timemachine.txt'}"
    train, validation = joined(corpus.splits["train"]), joined(corpus.splits["validation"])
    # d2l: lines cleaned to letters and spaces, lower-cased, concatenated without separator.
    lines = (data_dir / "timemachine" / "timemachine.txt").read_text().splitlines()
    expected = "".join(re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in lines)
    assert len(expected) == 170_580
    assert train + validation == expected
    assert len(set(expected)) == 27  # a-z and space (d2l adds <unk> for 28)
    # The validation split is the tail: the last 10 % of the characters, cut as nanoGPT.
    assert (len(train), len(validation)) == (153_522, 17_058)
    assert validation == expected[-17_058:]
    assert expected.startswith("the time machine by h g wells")
    assert all(col(corpus.splits["train"]))  # empty lines were dropped


def test_tiny_shakespeare_matches_nanogpt(data_dir, hf_cache):
    corpus = load("tiny_shakespeare", data_dir, hf_cache)
    assert set(corpus.splits) == {"train", "validation"}
    text = (data_dir / "tiny_shakespeare" / "input.txt").read_text()
    n = len(text)
    assert n == 1_115_394 and len(set(text)) == 65
    train, validation = joined(corpus.splits["train"]), joined(corpus.splits["validation"])
    # nanoGPT's shakespeare_char: data[:int(n * 0.9)] / data[int(n * 0.9):].
    assert (len(train), len(validation)) == (1_003_854, 111_540) == (int(n * 0.9), n - int(n * 0.9))
    assert train == text[: int(n * 0.9)] and validation == text[int(n * 0.9) :]
    # One row per line, "\n" appended; the cut falls inside a line, which is split in two.
    rows = col(corpus.splits["train"])
    assert rows[:2] == ["First Citizen:\n", "Before we proceed any further, hear me speak.\n"]
    assert rows[-1] == "But who comes here"
    assert col(corpus.splits["validation"])[0] == "?\n"
    assert len(rows) + len(corpus.splits["validation"]) == 40_000 + 1


def test_ptb_official_splits(data_dir, hf_cache):
    corpus = load("ptb", data_dir, hf_cache)
    lines = {split: col(ds) for split, ds in corpus.splits.items()}
    assert {s: len(v) for s, v in lines.items()} == {
        "train": 42_068,
        "validation": 3_370,
        "test": 3_761,
    }
    words = {s: sum(len(line.split()) for line in v) for s, v in lines.items()}
    assert words == {"train": 887_521, "validation": 70_390, "test": 78_669}
    assert lines["train"][0].startswith(" aer banknote berlitz")  # kept as is, no line end
    assert not lines["train"][0].endswith("\n")
    vocab = {w for line in lines["train"] for w in line.split()}
    assert len(vocab) == 9_999 and {"<unk>", "N"} <= vocab
    assert "ptb.train.txt.gz" in corpus.source and "ptb.test.txt" in corpus.source


def test_first_lines(data_dir, hf_cache):
    corpus = load("ptb", data_dir, hf_cache, max_train_lines=100, max_eval_lines=7)
    assert {s: len(ds) for s, ds in corpus.splits.items()} == {
        "train": 100,
        "validation": 7,
        "test": 7,
    }
    full = load("ptb", data_dir, hf_cache)
    assert col(corpus.splits["train"]) == col(full.splits["train"])[:100]
    assert col(corpus.splits["test"]) == col(full.splits["test"])[:7]


def test_first_chars_is_d2l_corpus_prefix(data_dir, hf_cache):
    """d2l trains its time machine on ``corpus[:10000]``; the cut may fall inside a line."""
    short = load("timemachine", data_dir, hf_cache, max_train_chars=10_000)
    full = load("timemachine", data_dir, hf_cache)
    assert joined(short.splits["train"]) == joined(full.splits["train"])[:10_000]
    assert joined(short.splits["validation"]) == joined(full.splits["validation"])


def test_first_chars_longer_than_train_keeps_it_all(tmp_path):
    corpus_file(tmp_path, "ab\ncd\n")
    cfg = small(tmp_path, line_end="", validation_fraction=0.25, max_train_chars=99)
    assert col(load_corpus(cfg, seed=0).splits["train"]) == ["ab", "c"]


@pytest.mark.parametrize("name", ["tiny_shakespeare", "ptb"])
def test_identical_calls_give_identical_fingerprints(name, data_dir, hf_cache):
    first = load(name, data_dir, hf_cache, max_train_lines=500)
    second = load(name, data_dir, hf_cache, max_train_lines=500)
    for split in first.splits:
        assert first.splits[split]._fingerprint == second.splits[split]._fingerprint
    other = load(name, data_dir, hf_cache, max_train_lines=400)
    assert other.splits["train"]._fingerprint != first.splits["train"]._fingerprint


def test_data_dir_from_environment(data_dir, hf_cache, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(data_dir))
    corpus = load_corpus(preset("timemachine", cache_dir=str(hf_cache), max_train_lines=3), 0)
    assert corpus.source.startswith(f"local:{data_dir}")
    assert len(corpus.splits["train"]) == 3


# ------------------------------------------------------------------------------------------
# Carving and line preparation on small files


def corpus_file(tmp_path, text, name="c.txt") -> Path:
    folder = tmp_path / "c"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def small(tmp_path, name="c.txt", **values) -> CorpusConfig:
    return to_corpus_config(
        {
            "name": "c",
            "dir": str(tmp_path),
            "local_splits": {"train": f"c/{name}"},
            "cache_dir": str(tmp_path / "hf"),
            **values,
        }
    )


def test_carve_chars_inside_one_line(tmp_path):
    corpus_file(tmp_path, "abcdefghij\n")
    cfg = small(tmp_path, line_end="", validation_fraction=0.2, test_fraction=0.3)
    splits = load_corpus(cfg, seed=0).splits
    assert {s: col(ds) for s, ds in splits.items()} == {
        "train": ["abcde"],
        "validation": ["fg"],
        "test": ["hij"],
    }


def test_carve_lines_keeps_every_line(tmp_path):
    lines = [f"line {i}" for i in range(10)] + [""]
    corpus_file(tmp_path, "\n".join(lines) + "\n", name="c.txt.gz")
    cfg = small(tmp_path, name="c.txt.gz", carve_by="lines", test_fraction=0.2)
    splits = load_corpus(cfg, seed=0).splits
    got = {s: col(ds) for s, ds in splits.items()}
    rows = [line + "\n" for line in lines]
    assert got == {"train": rows[:7], "validation": rows[7:8], "test": rows[8:]}


def test_carve_chars_keeps_empty_lines(tmp_path):
    corpus_file(tmp_path, "aaaa\n\n\nbbbb\n\ncccc\n")
    splits = load_corpus(small(tmp_path, line_end="", validation_fraction=0.5), 0).splits
    assert col(splits["train"]) == ["aaaa", "", "", "bb"]  # 6 of 12 characters
    assert col(splits["validation"]) == ["bb", "", "cccc"]


def test_clean_and_skip_empty_lines(tmp_path):
    corpus_file(tmp_path, "The Time-Machine, 1898!\n\n  ...  \nIt's   Late\n")
    cfg = small(tmp_path, clean="letters", skip_empty_lines=True, line_end="|", carve_by="lines")
    splits = load_corpus(cfg, 0).splits
    assert col(splits["train"]) == ["the time machine|"]
    assert col(splits["validation"]) == ["it s late|"]


def test_too_little_text_to_carve(tmp_path):
    corpus_file(tmp_path, "a\n")
    with pytest.raises(DataError, match="too few"):
        load_corpus(small(tmp_path, line_end="", validation_fraction=0.1), 0)


def test_hub_rows_become_lines(tmp_path, hf_cache):
    """The Hub path, on a local folder standing in for a Hub dataset (load_dataset(folder))."""
    folder = tmp_path / "hubset"
    folder.mkdir()
    rows = {"train": ["first line\nsecond line\n", "", "third\n"], "test": ["a\nb"]}
    for split, texts in rows.items():
        (folder / f"{split}.jsonl").write_text(
            "".join(json.dumps({"sentence": t, "id": i}) + "\n" for i, t in enumerate(texts))
        )
    cfg = to_corpus_config(
        {
            "name": "hubset",
            "hub": str(folder),
            "text_column": "sentence",
            "cache_dir": str(hf_cache),
            "carve_by": "lines",
            "validation_fraction": 0.25,
        }
    )
    corpus = load_corpus(cfg, seed=0)
    assert corpus.source == f"hub:{folder}"
    assert corpus.splits["train"].column_names == ["text"]
    got = {s: col(ds) for s, ds in corpus.splits.items()}
    assert got == {
        "train": ["first line\n", "second line\n", "\n"],
        "validation": ["third\n"],
        "test": ["a\n", "b\n"],
    }
    with pytest.raises(DataError, match="Did you mean 'sentence'"):
        load_corpus(dataclasses.replace(cfg, text_column="sentences"), 0)


# ------------------------------------------------------------------------------------------
# Errors: no data anywhere, wrong data root


def test_wikitext2_offline_names_both_ways_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        load_corpus(preset("wikitext2", cache_dir=str(tmp_path / "datasets")), seed=0)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "PIPELINE_DATA_DIR=/path/to/data" in message and "data.dir=" in message
    assert "wikitext2/wiki.train.raw" in message
    assert "network" in message and "Salesforce/wikitext" in message
    assert "\n" not in message


def test_timemachine_has_no_hub_copy(tmp_path):
    with pytest.raises(DataError) as error:
        load_corpus(preset("timemachine", cache_dir=str(tmp_path)), seed=0)
    message = str(error.value)
    assert "no copy on the Hugging Face Hub" in message and "PIPELINE_DATA_DIR" in message
    assert "timemachine/timemachine.txt" in message and "d2l-data" in message


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as error:
        load_corpus(preset("ptb", dir=str(missing)), seed=0)
    assert str(missing) in str(error.value) and "ptb/ptb.train.txt.gz" in str(error.value)


def test_missing_corpus_folder_in_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        load_corpus(preset("wikitext2"), seed=0)
    message = str(error.value)
    assert f"{tmp_path / 'wikitext2'} is missing" in message
    assert "wiki.valid.raw" in message and "Hugging Face Hub" in message
