"""Tagged data (``task=tagging``): sentences already split into words, one tag per word.

Two file formats, chosen by ``data.format`` or the file extension (``.conllu`` -> CoNLL-U,
anything else -> CoNLL-2003 style), each optionally gzipped:

* CoNLL-U, parsed with the ``conllu`` package: only integer word IDs are tagging tokens
  (multiword-token ranges ``3-4`` and empty nodes ``8.1`` are skipped, comments too); the tag
  is ``data.tag_column`` (``upos`` or ``xpos``). Every word line must have its 10 TAB columns.
* CoNLL-2003 style: one word per line, the word first and the tag in the last column
  (whitespace or TAB separated); a blank line between sentences; ``-DOCSTART-`` lines skipped.

Sources as for the other data sets: a preset's ``local_splits`` under ``data.dir`` /
``$PIPELINE_DATA_DIR``, else the Hub; or the user's files (``data=files data.train=...``).
A missing validation / test split is carved from the end of train. Bad input is one
``DataError`` naming the file and line.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.data.sources import (
    DATA_DIR_ENV,
    SPLITS,
    data_presets,
    data_root,
    hub_errors,
    user_file,
)
from pipeline.errors import ConfigError, DataError
from pipeline.registry import describe, to_dataclass

#: One sentence: its words and their tags (as long as the words).
Sentence = tuple[list[str], list[str]]
FORMATS = ("conllu", "conll")
TAG_COLUMNS = ("upos", "xpos")
DOCSTART = "-DOCSTART-"


@dataclass
class TaggedDataConfig:
    """Which tagged data set to load (``data=ud_ewt``, or ``data=files`` with task=tagging)."""

    name: str = describe("preset name (ud_ewt, files); also the sub-folder of the data root")
    type: str = describe("the data kind", "tagged", choices=["tagged"])
    dir: str | None = describe(f"local data root; when unset, ${DATA_DIR_ENV}, else the Hub", None)
    format: str | None = describe(
        "file format (default: from the extension, .conllu -> conllu, else conll)",
        None,
        choices=list(FORMATS),
    )
    tag_column: str = describe("CoNLL-U: the tag to predict", "upos", choices=list(TAG_COLUMNS))
    max_train_sentences: int | None = describe("keep the first n train sentences", None, min=1)
    max_eval_sentences: int | None = describe("keep the first n of validation/test", None, min=1)
    validation_fraction: float = describe(
        "the end of train held out as validation when there is no validation split",
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    hub: str | None = describe("Hugging Face Hub dataset id", None)
    hub_config: str | None = describe("the Hub dataset's config name", None)
    hub_splits: dict[str, str] = describe("split -> the Hub's split name", {})
    local_splits: dict[str, str] = describe("split -> file relative to the data root", {})
    train: str | None = describe("your training file (CoNLL-U or CoNLL-2003 style)", None)
    validation: str | None = describe("your validation file (default: end of train)", None)
    test: str | None = describe("your test file (default: end of train)", None)
    cache_dir: str | None = describe("datasets cache folder (Hub only)", None)


@dataclass
class TaggedData:
    """The sentences of each split, the tag names (train's, sorted) and their source."""

    splits: dict[str, list[Sentence]]
    tags: list[str]
    source: str
    carved: list[str] = field(default_factory=list)


def tagged_presets() -> list[str]:
    """The ``conf/data`` presets that are tagged data (``type: tagged``)."""
    return data_presets("tagged")


def to_tagged_config(node: Any) -> TaggedDataConfig:
    """A checked config from the composed ``data`` node; ``data=files`` keeps only the keys
    tagging reads (its classification keys, text_column..., do not apply)."""
    if isinstance(node, TaggedDataConfig):
        return node
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    values = dict(values)
    if values.get("type") != "tagged":
        known = {f.name for f in fields(TaggedDataConfig)}
        values = {k: v for k, v in values.items() if k in known and v is not None}
        values = {k: v for k, v in values.items() if k not in ("hub_splits", "local_splits")}
        values["type"] = "tagged"
    return to_dataclass(TaggedDataConfig, values, "data")


def load_tagged(config: TaggedDataConfig) -> TaggedData:
    """Read train, validation and test (carving what is missing from the end of train)."""
    if config.train:
        splits, source = _user_files(config)
    else:
        root = data_root(config, lambda r: _layout(config, r), "Unset {origin} to use the Hub.")
        if root is not None and config.local_splits:
            splits, source = _local(config, root)
        elif config.hub:
            splits, source = _hub(config)
        else:
            raise ConfigError(
                f"data={config.name} names no sentences: set data.train=... (your CoNLL-U or "
                "CoNLL-2003 file), or data.dir / $PIPELINE_DATA_DIR for a preset."
            )
    carved = [s for s in ("validation", "test") if s not in splits]
    splits = _carve(splits, carved, config.validation_fraction, source)
    if config.max_train_sentences:
        splits["train"] = splits["train"][: config.max_train_sentences]
    if config.max_eval_sentences:
        for name in ("validation", "test"):
            splits[name] = splits[name][: config.max_eval_sentences]
    tags = sorted({tag for _, sentence_tags in splits["train"] for tag in sentence_tags})
    return TaggedData({s: splits[s] for s in SPLITS}, tags, source, carved)


def _carve(
    splits: dict[str, list[Sentence]], missing: list[str], fraction: float, source: str
) -> dict[str, list[Sentence]]:
    """Each missing split: the last ``fraction`` of train's sentences, in order."""
    train = splits["train"]
    size = max(1, int(len(train) * fraction))  # each carved split: a fraction of all train
    for name in missing:
        if len(train) - size < 1:
            raise DataError(
                f"{source}: train has {len(train)} sentence(s), too few to hold out a "
                f"{name} split. Give data.{name}=... or more training sentences."
            )
        train, splits[name] = train[:-size], train[-size:]
    splits["train"] = train
    return splits


def _layout(config: TaggedDataConfig, root: Path) -> str:
    return "; ".join(f"{split}: {root / path}" for split, path in config.local_splits.items())


def _local(config: TaggedDataConfig, root: Path) -> tuple[dict[str, list[Sentence]], str]:
    splits = {}
    for split, path in config.local_splits.items():
        file = root / path
        if not file.is_file():
            raise DataError(
                f"Tagged data '{config.name}' has no {split} file: {file} is missing. The "
                f"expected layout is {_layout(config, root)}. Fix data.dir / {DATA_DIR_ENV}."
            )
        splits[split] = read_file(file, config.format, config.tag_column)
    return splits, "local:" + ", ".join(str(root / p) for p in config.local_splits.values())


def _user_files(config: TaggedDataConfig) -> tuple[dict[str, list[Sentence]], str]:
    splits, wheres = {}, []
    for split in SPLITS:
        value = getattr(config, split)
        if not value:
            continue
        path = user_file(split, value)
        splits[split] = read_file(path, config.format, config.tag_column)
        wheres.append(str(path))
    return splits, "local:" + ", ".join(wheres)


def _hub(config: TaggedDataConfig) -> tuple[dict[str, list[Sentence]], str]:
    """The Hub's UD copy: columns ``tokens`` and ``upos`` (class ids) / ``xpos`` (strings)."""
    import datasets

    splits = {}
    try:
        for split, hub_split in (config.hub_splits or {s: s for s in SPLITS}).items():
            ds = datasets.load_dataset(
                config.hub, config.hub_config, split=hub_split, cache_dir=config.cache_dir
            )
            feature = ds.features[config.tag_column]
            names = getattr(getattr(feature, "feature", None), "names", None)
            splits[split] = [
                (list(words), [names[t] if names else str(t) for t in tags])
                for words, tags in zip(ds["tokens"], ds[config.tag_column], strict=True)
            ]
    except hub_errors() as e:
        raise DataError(
            f"Cannot load {config.hub} ({config.hub_config}) from the Hub: {e}. Use a local "
            f"copy: set data.dir or {DATA_DIR_ENV} (layout: {config.local_splits})."
        ) from None
    return splits, f"hub:{config.hub}/{config.hub_config}"


def read_file(path: str | Path, fmt: str | None, tag_column: str = "upos") -> list[Sentence]:
    """The sentences of one file (``fmt``: conllu | conll; None: from the extension)."""
    path = Path(path)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    fmt = fmt or ("conllu" if name.lower().endswith(".conllu") else "conll")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"Cannot read {path}: {type(e).__name__}: {e}.") from None
    sentences = parse_text(text, fmt, tag_column, path)
    if not sentences:
        raise DataError(
            f"{path} holds no sentences ({fmt}: one word per line, a blank line between "
            "sentences). Check the path and data.format."
        )
    return sentences


def parse_text(
    text: str, fmt: str, tag_column: str = "upos", path: Path | str = "<text>"
) -> list[Sentence]:
    """The sentences of ``text`` (a file's content) in format ``fmt`` (conllu | conll)."""
    path = Path(path)
    blocks = _blocks(text)
    if fmt == "conllu":
        return [_conllu_sentence(lines, path, tag_column) for lines in blocks]
    return [s for s in (_conll_sentence(lines, path) for lines in blocks) if s[0]]


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines, each line with its 1-based number."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            blocks[-1].append((number, line))
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _conllu_sentence(lines: list[tuple[int, str]], path: Path, tag_column: str) -> Sentence:
    import conllu

    for number, line in lines:
        if not line.startswith("#") and len(line.split("\t")) != 10:
            raise DataError(
                f"{path}, line {number}: a CoNLL-U word line needs 10 TAB-separated columns "
                f"(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC); this one has "
                f"{len(line.split(chr(9)))}: {line[:60]!r}."
            )
    try:
        (tokens,) = conllu.parse("\n".join(line for _, line in lines) + "\n\n")
    except Exception as e:  # conllu.ParseException and friends
        raise DataError(f"{path}, lines {lines[0][0]}-{lines[-1][0]}: not CoNLL-U: {e}") from None
    words = [t for t in tokens if isinstance(t["id"], int)]
    if not words:
        raise DataError(
            f"{path}, line {lines[0][0]}: a sentence with no words (only comments, multiword "
            "ranges or empty nodes). Remove it or give it its word lines."
        )
    tags = [t[tag_column] for t in words]
    for token, tag in zip(words, tags, strict=True):
        if tag in (None, "_", ""):
            where = next(n for n, line in lines if line.split("\t")[0] == str(token["id"]))
            raise DataError(
                f"{path}, line {where}: the word {token['form']!r} has no {tag_column} tag "
                f"('_'). Use data.tag_column={'xpos' if tag_column == 'upos' else 'upos'}, "
                "or fill the column in."
            )
    return [str(t["form"]) for t in words], [str(tag) for tag in tags]


def _conll_sentence(lines: list[tuple[int, str]], path: Path) -> Sentence:
    words, tags = [], []
    for number, line in lines:
        columns = line.split()
        if columns[0] == DOCSTART:
            continue
        if len(columns) < 2:
            raise DataError(
                f"{path}, line {number}: one column ({line.strip()[:60]!r}); a CoNLL-2003 style "
                "line is the word, then the tag in the last column, separated by whitespace "
                "or a TAB. For CoNLL-U, name the file .conllu or set data.format=conllu."
            )
        words.append(columns[0])
        tags.append(columns[-1])
    return words, tags


def check_split_keys(config: TaggedDataConfig) -> None:
    """Unknown split names in ``local_splits`` / ``hub_splits``: one error, before reading."""
    for group in ("local_splits", "hub_splits"):
        for split in getattr(config, group):
            if split not in SPLITS:
                raise ConfigError(f"Unknown split data.{group}.{split}: one of {SPLITS}.")


def describe_sizes(data: TaggedData) -> str:
    """``train 12,544 sentences (204,577 words), ...`` for the data line."""
    parts = []
    for name, sentences in data.splits.items():
        words = sum(len(w) for w, _ in sentences)
        parts.append(f"{name} {len(sentences):,} sentences ({words:,} words)")
    return ", ".join(parts)
