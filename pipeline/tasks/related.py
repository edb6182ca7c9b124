"""Word vectors from text related to the data (``data.related_texts``): a classifier on a
few thousand movie-review sentences starts better from word2vec vectors trained on its
texts plus IMDb's 50,000 reviews than from random ones (issue 15: SST-2 0.841 -> 0.857,
MR 0.77-0.78 -> 0.823). So a data set that names related text suggests
``embedding.init=word2vec`` for the learned embedding, and its texts are read for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.config.suggestions import Suggestion, would_apply
from pipeline.data.extra_texts import HeldOut, entries, load_extra


def word2vec_suggestion(ctx: Any, data_cfg: Any, tokenizer: Any) -> list[Suggestion]:
    """``embedding.init=word2vec`` when the data names related texts, the embedding is the
    learned one, its vocabulary can be listed (``vocab``), and no language model gives the
    weights instead (``model.init_from``)."""
    if not entries(getattr(data_cfg, "related_texts", None)):
        return []
    if str(ctx.cfg.embedding.name) != "learned" or not hasattr(tokenizer, "vocab"):
        return []
    if getattr(ctx, "init_from", None) is not None:
        return []
    return [Suggestion("embedding.init", "word2vec", f"data={data_cfg.name} (data.related_texts)")]


def takes_related_words(ctx: Any, data_cfg: Any, tokenizer: Any) -> bool:
    """Whether the vocabulary takes the related texts' words too (``data.related_words``):
    only where the embedding starts from the vectors trained on them (``embedding.init=
    word2vec``, given or suggested), since a word never trained and without a vector would
    be noise where ``<unk>`` is not; and not for a resumed run or one started from a language
    model (their vocabulary is given)."""
    if not getattr(data_cfg, "related_words", False) or not hasattr(tokenizer, "extend"):
        return False
    if ctx.resumed is not None or getattr(ctx, "init_from", None) is not None:
        return False
    suggested = word2vec_suggestion(ctx, data_cfg, tokenizer)
    if not suggested:
        return False
    chosen = str(ctx.cfg.embedding.get("init", "")) == "word2vec"  # by the user or a preset
    return chosen or would_apply(ctx.cfg, suggested[0])


def add_related_words(tokenizer: Any, read: Callable[[], list[str]]) -> Callable[[], list[str]]:
    """``data.related_words``: the related texts' words join the vocabulary (up to
    ``tokenizer.vocab_size``) after the training texts' words, whose ids stay (TREC: 12 % of
    the test questions' words are not in the training questions' vocabulary). Returns a
    reader of the texts already read, for the word vectors that train on them next."""
    texts = read()
    before = tokenizer.vocab_size
    added = tokenizer.extend(texts)
    print(
        f"vocabulary: {before:,} from the training texts + {added:,} words of the related "
        "texts, which start from their word vectors (data.related_words)",
        flush=True,
    )
    return lambda: texts


def related_texts_reader(
    data_cfg: Any, splits: Any, seed: int, tracker: Any
) -> Callable[[], list[str]]:
    """A function that reads ``data.related_texts`` (called only when word vectors are
    trained): every entry's texts, less any that is or holds one of this data set's
    validation/test texts; what it kept and dropped is printed and logged as params."""

    def read() -> list[str]:
        evaluated = [splits[name] for name in ("validation", "test") if name in splits]
        held = [text or "" for split in evaluated for text in split["text"]]
        related = load_extra(data_cfg, seed, HeldOut(held), "related_texts")
        print(
            f"related_texts: {related.listing()} texts; dropped {related.dropped:,} that are or "
            "hold a validation/test text of this data set",
            flush=True,
        )
        tracker.log_params(
            {"related_texts": related.counts(), "related_texts_dropped": related.dropped}
        )
        return related.texts

    return read
