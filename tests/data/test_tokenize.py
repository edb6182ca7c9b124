"""The tokenize stage: fitting from config nodes, Dataset.map output, truncation, caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.data.tokenize import (
    TokenizedData,
    fit_tokenizer,
    load_tokenizer,
    tokenize,
    truncate,
)
from pipeline.errors import ConfigError, DataError
from plugins.tokenizers.basic_english import BasicEnglishConfig, BasicEnglishTokenizer
from plugins.tokenizers.word import WordTokenizer

TRAIN = [
    "A great movie, really great!<br /><br />Loved it.",
    "A bad movie. Really bad; boring too.",
    "Great acting but a thin plot.",
    "",
    "Ünïcödé café 😀 great",
] * 4
LABELS = [1, 0, 1, 0, 1] * 4


def in_memory():
    import datasets

    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": TRAIN, "label": LABELS}),
            "test": datasets.Dataset.from_dict({"text": ["great plot", ""], "label": [1, 0]}),
        }
    )


def write_jsonl(tmp_path: Path) -> dict[str, str]:
    files = {}
    for split, texts, labels in [("train", TRAIN, LABELS), ("test", TRAIN[:3], LABELS[:3])]:
        path = tmp_path / f"{split}.jsonl"
        rows = [json.dumps({"text": t, "label": y}) for t, y in zip(texts, labels, strict=True)]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        files[split] = str(path)
    return files


def on_disk(files: dict[str, str], cache_dir: Path):
    """A DatasetDict backed by cache files, as load_dataset gives (those are cached)."""
    import datasets

    return datasets.load_dataset("json", data_files=files, cache_dir=str(cache_dir))


# -- fit_tokenizer / load_tokenizer -----------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        OmegaConf.create({"name": "word", "vocab_size": 50, "min_freq": 1, "lowercase": True}),
        {"name": "word", "vocab_size": 50, "min_freq": 1},
    ],
    ids=["DictConfig", "dict"],
)
def test_fit_tokenizer_from_a_config_node(node) -> None:
    tok = fit_tokenizer(node, TRAIN)
    assert isinstance(tok, WordTokenizer)
    assert tok.config.vocab_size == 50 and tok.config.min_freq == 1
    assert "great" in tok.vocab()


def test_fit_tokenizer_from_a_dataclass_and_a_dataset() -> None:
    split = in_memory()["train"]
    tok = fit_tokenizer(BasicEnglishConfig(min_freq=2), split)  # no name: found by its type
    assert isinstance(tok, BasicEnglishTokenizer)
    same = fit_tokenizer(BasicEnglishConfig(name="basic_english", min_freq=2), TRAIN)
    assert tok.vocab() == same.vocab()
    assert tok.fingerprint() == same.fingerprint()


def test_fit_tokenizer_config_errors() -> None:
    with pytest.raises(ConfigError, match="word"):
        fit_tokenizer({"name": "wordz"}, TRAIN)
    with pytest.raises(ConfigError, match="vocab_size"):
        fit_tokenizer({"name": "word", "vocab_size": 1}, TRAIN)
    with pytest.raises(ConfigError, match="min_freq"):
        fit_tokenizer(BasicEnglishConfig(name="basic_english", min_freq=0), TRAIN)
    with pytest.raises(ConfigError, match="lowercas"):
        fit_tokenizer({"name": "word", "lowercas": False}, TRAIN)
    with pytest.raises(TypeError, match="train"):
        fit_tokenizer({"name": "word"}, in_memory())  # the DatasetDict, not its train split


@pytest.mark.parametrize("name", ["word", "basic_english"])
def test_load_tokenizer_round_trip(name: str, tmp_path: Path) -> None:
    tok = fit_tokenizer({"name": name, "min_freq": 1}, TRAIN)
    tok.save(tmp_path / "tok")
    back = load_tokenizer(tmp_path / "tok")
    assert type(back) is type(tok)
    assert back.encode_batch(TRAIN) == tok.encode_batch(TRAIN)
    assert back.fingerprint() == tok.fingerprint()


def test_load_tokenizer_from_a_wrong_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tokenizer_config.json"):
        load_tokenizer(tmp_path)


# -- tokenize ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["word", "basic_english"])
def test_tokenize_columns_truncation_and_empty_rows(name: str) -> None:
    splits = in_memory()
    tok = fit_tokenizer({"name": name, "min_freq": 1}, splits["train"])
    out = tokenize(splits, tok, max_length=4)
    assert isinstance(out, TokenizedData)
    assert set(out.splits) == {"train", "test"}
    train = out.splits["train"]
    assert train.column_names == ["label", "input_ids", "length"]
    assert train["label"] == LABELS
    full = tok.encode_batch(TRAIN)
    assert train["input_ids"] == [ids[:4] for ids in full]  # the first max_length tokens
    assert train["length"] == [min(len(ids), 4) for ids in full]
    assert train["length"][3] == 0 and train["input_ids"][3] == []  # empty text
    assert out.rows_tokenized == len(TRAIN) + 2
    assert out.from_cache == {"train": False, "test": False}
    assert out.seconds >= 0
    assert str(train.features["input_ids"].feature.dtype) == "int32"

    longer = tokenize(splits, tok, max_length=None)
    assert longer.splits["train"]["input_ids"] == full

    tail = tokenize(splits, tok, max_length=4, truncation_side="left").splits["train"]
    assert tail["input_ids"] == [ids[-4:] for ids in full]  # the last max_length tokens
    assert tail["input_ids"] != train["input_ids"]  # some text is longer than 4 tokens


def test_truncate_keeps_the_first_or_the_last_items() -> None:
    assert truncate([1, 2, 3, 4, 5], 3) == [1, 2, 3]
    assert truncate([1, 2, 3, 4, 5], 3, "left") == [3, 4, 5]
    assert truncate(["a", "b"], 3, "left") == ["a", "b"]
    assert truncate([1, 2, 3], None, "left") == [1, 2, 3]


def test_tokenize_text_only_and_empty_splits() -> None:
    import datasets

    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["one two", "three"]}),
            "validation": datasets.Dataset.from_dict(
                {"text": []}, features=datasets.Features({"text": datasets.Value("string")})
            ),
        }
    )
    tok = fit_tokenizer({"name": "basic_english"}, splits["train"])
    out = tokenize(splits, tok, max_length=8)
    assert out.splits["train"]["input_ids"] == [[2, 4], [3]]
    assert out.splits["validation"].num_rows == 0
    assert out.splits["validation"].column_names == ["input_ids", "length"]


def test_tokenize_bad_input() -> None:
    import datasets

    tok = fit_tokenizer({"name": "basic_english"}, TRAIN)
    with pytest.raises(ConfigError, match="max_length"):
        tokenize(in_memory(), tok, max_length=0)
    with pytest.raises(ConfigError, match="truncation_side='middle'"):
        tokenize(in_memory(), tok, max_length=4, truncation_side="middle")
    no_text = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"sentence": ["a"]})})
    with pytest.raises(DataError, match="text"):
        tokenize(no_text, tok, max_length=8)


def test_second_identical_run_comes_from_the_cache(tmp_path: Path) -> None:
    files, cache = write_jsonl(tmp_path), tmp_path / "cache"
    node = {"name": "word", "vocab_size": 30, "min_freq": 1}
    splits = on_disk(files, cache)
    first_tok = fit_tokenizer(node, splits["train"])
    first = tokenize(splits, first_tok, max_length=5)
    assert first.rows_tokenized == len(TRAIN) + 3
    assert not any(first.from_cache.values())

    # A new run: the data loaded again, a new tokenizer fitted the same way.
    splits = on_disk(files, cache)
    second_tok = fit_tokenizer(node, splits["train"])
    assert second_tok is not first_tok
    second = tokenize(splits, second_tok, max_length=5)
    assert second.rows_tokenized == 0
    assert second.from_cache == {"train": True, "test": True}
    for split in ("train", "test"):
        assert second.splits[split].to_dict() == first.splits[split].to_dict()

    # What changes the output re-tokenizes: max_length, the side cut, the vocab.
    assert tokenize(splits, second_tok, max_length=6).rows_tokenized == len(TRAIN) + 3
    left = tokenize(splits, second_tok, max_length=5, truncation_side="left")
    assert left.rows_tokenized == len(TRAIN) + 3
    assert left.splits["train"]["input_ids"] != first.splits["train"]["input_ids"]
    other_tok = fit_tokenizer({**node, "vocab_size": 10}, splits["train"])
    assert tokenize(splits, other_tok, max_length=5).rows_tokenized == len(TRAIN) + 3
    # ... and each of those is cached in turn.
    assert tokenize(splits, other_tok, max_length=5).rows_tokenized == 0


def test_the_fitted_tokenizer_is_cached_with_the_split(tmp_path: Path, monkeypatch) -> None:
    """A second fit on the same cached split with the same config loads, it does not fit."""
    from pipeline.registry import tokenizers

    files, cache = write_jsonl(tmp_path), tmp_path / "cache"
    node = {"name": "word", "vocab_size": 30, "min_freq": 1}
    first = fit_tokenizer(node, on_disk(files, cache)["train"])
    fits = []
    cls = tokenizers.get("word").cls
    original = cls.fit
    monkeypatch.setattr(cls, "fit", lambda self, texts: fits.append(1) or original(self, texts))

    again = fit_tokenizer(node, on_disk(files, cache)["train"])  # the data loaded anew
    assert fits == []  # from the cache
    assert again.encode_batch(list(TRAIN)) == first.encode_batch(list(TRAIN))
    assert again.vocab_size == first.vocab_size

    other = fit_tokenizer({**node, "vocab_size": 10}, on_disk(files, cache)["train"])
    assert fits == [1] and other.vocab_size != first.vocab_size  # another config: fitted
    # an in-memory split has no cache folder: always fitted
    fit_tokenizer(node, list(TRAIN))
    assert fits == [1, 1]
