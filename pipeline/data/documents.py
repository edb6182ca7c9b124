"""Documents as one language-model stream: a labelled data set's texts (``data.as_corpus``)
and backward streams (``data.reverse``).

``task=lm`` on a labelled data set (``data=imdb data.as_corpus=train``) reads its texts
through the labelled loader itself (:func:`pipeline.data.labelled.load_data`, with the same
seeded carving and subsampling), so the language model's train and validation texts are
exactly the classifier's of the same data config and seed: a classifier fine-tuned from it
never validates on texts the language model trained on. Test texts are only evaluated
(perplexity), unless ``data.as_corpus=[train,test]`` also trains on them (transductive).
Labels are dropped; each text is one document, and documents are joined, in split order,
into one stream, each ending with the tokenizer's end of document: the word tokenizer's
``<eos>`` (``tokenizer.eos=true``, required), a ``"\\n"`` for characters.

``data.reverse=true`` reverses each document's tokens (a row: a review, or a corpus line),
its end-of-document token staying last: ``a b c <eos>`` -> ``c b a <eos>``; ULMFiT's
backward language model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pipeline.data.corpus import LoadedCorpus
from pipeline.data.extra_texts import ExtraTexts, HeldOut, load_extra
from pipeline.errors import ConfigError

#: The file a language model's tokenizer folder gets beside the tokenizer's own files: how
#: its stream was made (``reverse``, ``as_corpus``), for a later consumer to check.
STREAM_FILE = "lm_stream.json"


def load_texts(config: Any, seed: int, doc_end: str) -> tuple[LoadedCorpus, bool, ExtraTexts]:
    """A labelled data set's texts as a corpus (column ``text``, one row per document, each
    ending with ``doc_end``), whether its train split holds the test texts too, and the
    extra documents (``data.corpus_extra``) added after its train texts."""
    import datasets

    from pipeline.data.labelled import load_data

    data = load_data(config, seed)
    texts = {name: split.select_columns(["text"]) for name, split in data.splits.items()}
    transductive = "test" in config.as_corpus and "test" in texts
    held = [name for name in ("validation", "test") if name in texts]
    held = [name for name in held if not (transductive and name == "test")]
    extra = load_extra(config, seed, HeldOut([t for name in held for t in texts[name]["text"]]))
    if transductive:
        texts["train"] = datasets.concatenate_datasets([texts["train"], texts["test"]])
    if extra.texts:
        added = datasets.Dataset.from_dict({"text": extra.texts}, features=texts["train"].features)
        texts["train"] = datasets.concatenate_datasets([texts["train"], added])
    if doc_end:
        texts = {name: _with_end(split, doc_end) for name, split in texts.items()}
    source = f"{data.source} (texts, as_corpus={','.join(config.as_corpus)})"
    if extra.sources:
        source += f" + corpus_extra: {extra.listing()} documents"
    return LoadedCorpus(splits=datasets.DatasetDict(texts), source=source), transductive, extra


def _with_end(split: Any, doc_end: str) -> Any:
    return split.map(
        _end_texts, batched=True, fn_kwargs={"doc_end": doc_end}, desc="Ending documents"
    )


def _end_texts(batch: dict[str, list], doc_end: str) -> dict[str, list]:
    return {"text": [text + doc_end for text in batch["text"]]}


def document_ids(dataset: Any, reverse: bool, end_id: int | None) -> Tensor:
    """All ``input_ids`` of a tokenized split as one int64 stream [N], row after row; with
    ``reverse`` each row's tokens reversed, a last token ``end_id`` kept last."""
    column = dataset.with_format("arrow")[:].column("input_ids").combine_chunks()
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.values.to_numpy(zero_copy_only=False).astype(np.int64)
    values = values[offsets[0] : offsets[-1]]  # a sliced list array may start past 0
    if not reverse:
        return torch.from_numpy(values)
    starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    stops = ends.copy()  # each row's reversed part is [start, stop)
    if end_id is not None and values.size:
        nonempty = ends > starts
        last = values[np.maximum(ends - 1, 0)]
        stops -= (nonempty & (last == end_id)).astype(np.int64)
    position = np.arange(values.size, dtype=np.int64)
    row = np.repeat(np.arange(starts.size), ends - starts)
    inside = position < stops[row]
    source = position.copy()
    source[inside] = (starts + stops - 1)[row][inside] - position[inside]
    return torch.from_numpy(values[source])


def texts_config(cfg: Any) -> tuple[Any, str]:
    """The labelled data config of ``task=lm`` on a labelled data set (``cfg``: the composed
    run config), and the text that ends each document; a ``ConfigError`` without
    ``data.as_corpus``, or with a word tokenizer that has no ``<eos>``."""
    from pipeline.data.data_config import to_config

    config = to_config(cfg.data)
    if config.corpus_extra and not config.as_corpus:
        raise ConfigError(
            f"data.corpus_extra adds training text to a language model on the texts of "
            f"data={config.name}, and data.as_corpus is not set: add data.as_corpus=train "
            "(task=lm), or drop data.corpus_extra."
        )
    if config.as_corpus is None:
        raise ConfigError(
            f"data={config.name} is a labelled data set, but task=lm needs a text corpus: "
            "its texts, with data.as_corpus=train (the training texts, labels ignored; or "
            "[train,test], transductive), or data=timemachine, tiny_shakespeare, ptb or "
            "wikitext2."
        )
    tokenizer = cfg.tokenizer
    if "eos" in tokenizer and not tokenizer.eos:
        raise ConfigError(
            f"data.as_corpus joins the texts of data={config.name} into one stream, each "
            f"ending with the tokenizer's <eos>, and tokenizer={tokenizer.name} has it off: "
            "add tokenizer.eos=true."
        )
    return config, "\n" if str(tokenizer.name) == "char" else ""


def end_id(tokenizer: Any, char_level: bool) -> int | None:
    """The id that ends a document or line (kept last when reversing): the tokenizer's
    ``eos_id``, or for characters the id of ``"\\n"`` when it is in the vocabulary."""
    eos = getattr(tokenizer, "eos_id", None)
    if eos is not None or not char_level:
        return eos
    ids = tokenizer.encode("\n")
    return ids[0] if len(ids) == 1 and ids[0] != tokenizer.unk_id else None


def check_resumed_direction(resumed: Any, reverse: bool, where: Any) -> None:
    """Refuse to resume a forward model's run as a backward one, or the reverse."""
    from pipeline.data.fingerprint import DataChanged

    saved = getattr(resumed, "data", None)
    if not saved or bool(saved.get("reverse", False)) == reverse:
        return
    then, now = ("backward", "forward") if not reverse else ("forward", "backward")
    raise DataChanged(
        f"Cannot resume the run in {where}: it trained a {then} language model and "
        f"data.reverse={str(reverse).lower()} asks for a {now} one. Resume with "
        f"data.reverse={str(not reverse).lower()}, or start a new run.",
        finished=bool(getattr(resumed, "finished", False)),
    )


def stream_record(
    reverse: bool, texts_config: Any, transductive: bool, extra: ExtraTexts | None = None
) -> dict[str, Any]:
    """How a language model's stream was made (its checkpoints' ``stream``, and
    ``STREAM_FILE``): backward or not, which splits' texts of a labelled data set, and the
    extra train documents (``corpus_extra``: per entry its name, documents kept and
    dropped), when there are any."""
    as_corpus = getattr(texts_config, "as_corpus", None)
    record = {
        "reverse": reverse,
        "as_corpus": list(as_corpus) if as_corpus else None,
        "transductive": transductive,
    }
    if extra is not None and extra.sources:
        record["corpus_extra"] = extra.sources
    return record


def write_stream_record(folder: Path, record: dict[str, Any]) -> None:
    (folder / STREAM_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
