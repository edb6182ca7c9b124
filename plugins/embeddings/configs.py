"""Configs of the embeddings in this package, with no torch import: the plugin loads them at
start-up; each class is imported only when a run builds it (``declare`` in ``plugins``)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.registry import ComponentConfig, describe


@dataclass
class LearnedEmbeddingConfig(ComponentConfig):
    dim: int = describe("embedding vector size", 128, min=1)
    dropout: float = describe(
        "dropout on embedded tokens", 0.25, min=0.0, max=1.0, max_exclusive=True
    )
    dropout_kind: str = describe(
        "how embedding.dropout draws its mask: element (one per value, [B, T, D]) | locked "
        "(variational: one per sequence and feature, [B, 1, D], the same at every step)",
        "element",
        choices=["element", "locked"],
    )
    token_dropout: float = describe(
        "drop whole embedded tokens: one mask per token occurrence ([B, T, 1]), the kept "
        "vectors scaled by 1/(1-p); training only. 0 = off",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    init: str = describe(
        "the table's first weights: random | word2vec (vectors of embedding.dim trained with "
        "gensim on the training texts and data.related_texts before the run, cached by "
        "content, as embedding=pretrained embedding.train=word2vec; words without one stay "
        "random). Suggested by a data set with data.related_texts",
        "random",
        choices=["random", "word2vec"],
    )
    init_scale: str = describe(
        "init=word2vec: the vectors' scale: vectors (as trained: std ~0.6) | table (all "
        "scaled by one factor to the random table's std, 1; suggested by encoder=transformer, "
        "whose positions are otherwise as large as the words)",
        "vectors",
        choices=["vectors", "table"],
    )

    @property
    def uses_vocabulary(self) -> bool:
        """``init=word2vec`` is built with the run's vocabulary (``contracts.Vocabulary``)."""
        return self.init == "word2vec"


VECTOR_FORMATS = ("auto", "word2vec", "word2vec_binary", "glove", "fasttext")


@dataclass
class PretrainedEmbeddingConfig(ComponentConfig):
    path: str = describe(
        "word vectors file: word2vec (text or binary), GloVe .txt or fastText .vec; "
        "empty with embedding.train=word2vec",
        "",
    )
    format: str = describe(
        "format of embedding.path: auto detects it (binary or text, header or none); "
        "word2vec and fasttext are text with a 'count dim' header, glove text without one",
        "auto",
        choices=list(VECTOR_FORMATS),
    )
    dim: int = describe(
        "embedding size; 0 takes the vectors' dimension (another size than theirs is an "
        "error); with embedding.train=word2vec, 0 means 100",
        0,
        min=0,
    )
    freeze: bool = describe("keep the vectors fixed (true) or fine-tune them", False)
    dropout: float = describe(
        "dropout on embedded tokens", 0.25, min=0.0, max=1.0, max_exclusive=True
    )
    train: str = describe(
        "none: read embedding.path; word2vec: train vectors with gensim on the training texts "
        "(and embedding.extra_texts) before the run, cached by content",
        "none",
        choices=["none", "word2vec"],
    )
    extra_texts: list[str] = describe(
        "more plain-text files (one text a line) to train word2vec on", []
    )
    window: int = describe("word2vec: context window (words each side)", 5, min=1)
    min_count: int = describe("word2vec: ignore words seen fewer times", 1, min=1)
    epochs: int = describe("word2vec: passes over the texts", 5, min=1)
    cache_dir: str = describe(
        "where aligned and trained vectors are cached; empty: $SEQPIPE_CACHE, else "
        "~/.cache/seqpipe/vectors",
        "",
    )

    def __post_init__(self) -> None:
        # Runs in ``config_from``, before any data is read; the file is read at build time.
        if self.train == "word2vec" and str(self.path).strip():
            raise ConfigError(
                f"embedding.train=word2vec trains its own vectors, but embedding.path="
                f"{self.path} names a file too. Drop one of them."
            )


# Character-aware word embeddings (``plugins.embeddings.characters``). Each field is made
# by a function so both configs share its help text and bounds, with their own defaults.
def _char_dim() -> int:
    return describe("size of each character's vector", 30, min=1)


def _char_filters(default: int) -> int:
    return describe("char CNN: number of filters (the size of the char vector)", default, min=1)


def _char_kernel() -> int:
    return describe("char CNN: filter width, in characters", 3, min=1)


def _max_word_length() -> int:
    return describe(
        "characters read per word: a longer word keeps its first max_word_length characters",
        24,
        min=1,
    )


def _dropout() -> float:
    return describe("dropout on the word vectors", 0.25, min=0.0, max=1.0, max_exclusive=True)


@dataclass
class CharCNNEmbeddingConfig(ComponentConfig):
    """``embedding=char_cnn``: a word is the max-pooled CNN of its characters (Ma & Hovy 2016)."""

    char_dim: int = _char_dim()
    char_filters: int = _char_filters(100)
    char_kernel: int = _char_kernel()
    max_word_length: int = _max_word_length()
    dropout: float = _dropout()


@dataclass
class WordCharEmbeddingConfig(ComponentConfig):
    """``embedding=word_char``: a learned word vector concatenated with a character encoding of
    the word (char CNN, or char BiLSTM: Lample et al. 2016, Plank et al. 2016)."""

    dim: int = describe("word vector size (the char vector is added to it)", 100, min=1)
    char_encoder: str = describe(
        "how a word's characters become its char vector: cnn (max-pooled convolution) | lstm "
        "(a BiLSTM's last forward and backward states)",
        "cnn",
        choices=["cnn", "lstm"],
    )
    char_dim: int = _char_dim()
    char_filters: int = _char_filters(50)
    char_kernel: int = _char_kernel()
    char_hidden: int = describe(
        "char BiLSTM: hidden size of each direction (the char vector is 2 x char_hidden)",
        50,
        min=1,
    )
    max_word_length: int = _max_word_length()
    dropout: float = describe(
        "dropout on the concatenated word + char vectors",
        0.25,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    dropout_kind: str = describe(
        "how embedding.dropout draws its mask: element | locked (one per sequence and feature)",
        "element",
        choices=["element", "locked"],
    )
    token_dropout: float = describe(
        "drop a token's whole word vector (its char vector stays, so the model learns to read "
        "unknown words from their characters); training only. 0 = off",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
