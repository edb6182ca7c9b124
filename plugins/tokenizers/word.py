"""``tokenizer=word``: a word-level vocabulary trained with Hugging Face ``tokenizers``.

Normalizer: HTML line breaks (``<br />``, as in IMDb) become spaces, then optional
lowercasing, then the literal specials ``<pad>`` (and ``<eos>`` when ``eos=true``) become
``<unk>``. Pre-tokenizer: ``split=words``: ``Whitespace`` (``\\w+|[^\\w\\s]+``: words and
runs of punctuation); ``split=whitespace``: ``WhitespaceSplit`` (whitespace only, for corpora
that are already tokenized, such as PTB). Model: ``WordLevel`` trained by
``WordLevelTrainer``, whose ordering is count descending, ties broken by the token itself
(deterministic). ``<pad>`` = 0, ``<unk>`` = 1, and with ``eos=true`` ``<eos>`` = 2, appended
to every text (one text = one line of a corpus, as Zaremba et al. and Mikolov do for PTB).

Specials in raw text: a literal ``<unk>`` (PTB marks its rare words so) is one token with
the unk id in either split mode, and is not counted as a word when fitting. A literal
``<pad>`` (or ``<eos>``) becomes ``<unk>`` too: padding and end-of-line ids only ever come
from the tokenizer itself. No literal special occurs in the classification data sets, so
their ids are the same as before these rules.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.registry import ComponentConfig, describe, tokenizers
from plugins.tokenizers._common import (
    PAD,
    PAD_ID,
    SPECIALS,
    UNK,
    UNK_ID,
    fingerprint,
    not_fitted,
    read_config,
    write_config,
)

NAME = "word"
#: Bump when a change here changes the ids produced from the same saved files.
VERSION = "1"
HF_FILE = "tokenizer.json"
#: ``<br />``, ``<br/>``, ``<br>`` (any case) become a space.
BR_PATTERN = r"(?i)<br\s*/?>"
EOS = "<eos>"
EOS_ID = len(SPECIALS)  # 2: right after <pad> and <unk>
SPLITS = ("words", "whitespace")


@dataclass
class WordTokenizerConfig(ComponentConfig):
    vocab_size: int = describe(
        "max vocabulary size incl. the specials <pad>, <unk> (and <eos>)", 30000, min=len(SPECIALS)
    )
    min_freq: int = describe("min count in the train split for a word to enter the vocab", 2, min=1)
    lowercase: bool = describe("lowercase the text before splitting it into words", True)
    zero_digits: bool = describe(
        "every digit becomes 0 before the lookup (2019 and 1984 share one entry; numbers "
        "unseen in train are known)",
        False,
    )
    split: str = describe(
        "how text splits into words: 'words' = \\w+ runs and punctuation runs apart; "
        "'whitespace' = on whitespace only (pre-tokenized corpora such as PTB)",
        "words",
        choices=list(SPLITS),
    )
    eos: bool = describe(
        "add an <eos> special (id 2) and append it to every text (one text = one line)", False
    )

    def __post_init__(self) -> None:
        # Runs in ``config_from``, before any data is read (the tokenizer checks it again).
        specials = len(SPECIALS) + (1 if self.eos else 0)
        if isinstance(self.vocab_size, int) and self.vocab_size < specials:
            raise ConfigError(
                f"tokenizer.vocab_size={self.vocab_size} is too small: it must be >= {specials} "
                f"to hold the specials <pad>, <unk>{', <eos>' if self.eos else ''}. Raise it "
                "(e.g. tokenizer.vocab_size=30000) or leave it out."
            )


#: Texts longer than this are fitted and encoded in pieces, cut at whitespace: the counts and
#: ids are the same, and a 10 MB text costs tens of MB instead of ~1 GB (and 4x the time).
PIECE_CHARS = 1 << 16
_SPACE = re.compile(r"\s")
#: ``<br`` then only whitespace up to the cut: the cut would split a ``<br />``.
_BR_OPEN = re.compile(r"(?i)<br\s*$")


def _pieces(texts: Iterable[str]) -> Iterator[str]:
    """The texts, each long one cut into pieces at whitespace where no word, punctuation run
    or ``<br />`` spans the cut, so every word is counted exactly as in the whole text."""
    for text in texts:
        text = "" if text is None else text
        start = 0
        while len(text) - start > PIECE_CHARS:
            found = _SPACE.search(text, start + PIECE_CHARS)
            while found is not None and _BR_OPEN.search(text, start, found.start()):
                found = _SPACE.search(text, found.end())  # inside "<br />": cut further on
            if found is None:
                break
            yield text[start : found.start()]
            start = found.start()
        yield text[start:]


def _alternation(tokens: list[str]) -> str:
    return "|".join(re.escape(t) for t in tokens)


@tokenizers.register(NAME, config=WordTokenizerConfig)
class WordTokenizer:
    """Word-level tokenizer (HF ``WordLevel``); unknown words map to ``<unk>``."""

    name = NAME
    #: What joins decoded tokens back into text (generation).
    separator = " "

    def __init__(self, config: WordTokenizerConfig | None = None) -> None:
        self.config = config if config is not None else WordTokenizerConfig(name=NAME)
        if self.config.split not in SPLITS:
            raise ConfigError(
                f"tokenizer.split={self.config.split!r} is not a valid choice: one of {SPLITS}."
            )
        if self.config.vocab_size < len(self.specials):
            raise ConfigError(
                f"tokenizer.vocab_size={self.config.vocab_size} is too small: it must be >= "
                f"{len(self.specials)} to hold the specials {self.specials}."
            )
        self._tok: Any = None  # tokenizers.Tokenizer once fitted or loaded
        self._index: dict[str, int] | None = None  # word -> id (encode_words), built once

    @property
    def specials(self) -> list[str]:
        """The special tokens in id order: <pad>, <unk>, then <eos> when ``eos`` is on."""
        return [*SPECIALS, EOS] if self.config.eos else list(SPECIALS)

    # -- fitting -----------------------------------------------------------------------
    def _normalizer(self, training: bool) -> Any:
        from tokenizers import Regex, normalizers

        steps = [normalizers.Replace(Regex(BR_PATTERN), " ")]
        if self.config.lowercase:
            steps.append(normalizers.Lowercase())
        if getattr(self.config, "zero_digits", False):
            steps.append(normalizers.Replace(Regex(r"\d"), "0"))
        others = [t for t in self.specials if t != UNK]  # <pad> (and <eos>) -> <unk>
        steps.append(normalizers.Replace(Regex(_alternation(others)), UNK))
        if training:
            # Encoding cuts a literal <unk> out as one token (an added token, below); the
            # trainer does not, so it must not see it: that would count "<unk>" (or "<",
            # "unk", ">") as words. A space splits exactly where the added token does.
            steps.append(normalizers.Replace(UNK, " "))
        return normalizers.Sequence(steps)

    def _pre_tokenizer(self) -> Any:
        from tokenizers import pre_tokenizers

        if self.config.split == "whitespace":
            return pre_tokenizers.WhitespaceSplit()
        return pre_tokenizers.Whitespace()

    def _empty(self) -> Any:
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel

        tok = Tokenizer(WordLevel(unk_token=UNK))
        tok.normalizer = self._normalizer(training=True)
        tok.pre_tokenizer = self._pre_tokenizer()
        return tok

    def fit(self, texts: Iterable[str]) -> None:
        from tokenizers.trainers import WordLevelTrainer

        trainer = WordLevelTrainer(
            vocab_size=self.config.vocab_size,
            min_frequency=self.config.min_freq,
            special_tokens=self.specials,
            show_progress=False,
        )
        tok = self._empty()
        tok.train_from_iterator(_pieces(texts), trainer=trainer)
        # The trainer also registers the specials as "added tokens", which are matched in
        # raw text: a review containing the literal "<pad>" would get the pad id. Rebuild
        # the model from the learned vocab alone so that only padding is ever id 0.
        self._finish(tok.get_vocab(), tok.pre_tokenizer)

    def extend(self, texts: Iterable[str]) -> int:
        """Add the words of ``texts`` that the fitted vocabulary lacks, after its own words
        (which keep their ids), until it holds ``vocab_size`` entries; return how many.
        They are counted and chosen as ``fit`` chooses (normalized and split alike;
        ``min_freq``; count descending, ties by the word). For words that have vectors
        from other text (``data.related_words``): a word never seen in training keeps a
        meaning instead of becoming ``<unk>``."""
        vocab, size = dict(self._fitted().get_vocab()), self.config.vocab_size
        if size <= len(vocab):
            return 0
        other = WordTokenizer(self.config)  # the same counting, cut-offs and size
        other.fit(texts)
        added = 0
        for word in other.vocab()[len(self.specials) :]:
            if len(vocab) >= size:
                break
            if word not in vocab:
                vocab[word] = len(vocab)
                added += 1
        self._finish(vocab, self._tok.pre_tokenizer)
        return added

    def _finish(self, vocab: dict[str, int], pre_tokenizer: Any) -> None:
        """The fitted tokenizer over ``vocab`` (specials first, ids without gaps)."""
        from tokenizers import AddedToken, Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.processors import TemplateProcessing

        assert vocab[PAD] == PAD_ID and vocab[UNK] == UNK_ID, vocab
        assert not self.config.eos or vocab[EOS] == EOS_ID, vocab
        assert sorted(vocab.values()) == list(range(len(vocab))), "vocab ids have a gap"
        plain = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
        plain.normalizer = self._normalizer(training=False)
        plain.pre_tokenizer = pre_tokenizer
        # A literal <unk> (after normalization, so also "<UNK>" when lowercasing, and the
        # <pad>/<eos> rewritten above) is cut out whole, before the split: the unk id.
        plain.add_tokens([AddedToken(UNK, normalized=True, special=False)])
        if self.config.eos:
            plain.post_processor = TemplateProcessing(
                single=f"$A {EOS}", special_tokens=[(EOS, EOS_ID)]
            )
        self._tok = plain
        self._index: dict[str, int] | None = None

    def fit_words(self, sentences: Iterable[list[str]]) -> None:
        """Fit on words already split (tagging): each given word is one vocabulary entry
        (normalized as text is: lowercased with ``lowercase``), never split further; order
        and cut-offs as ``fit`` (count descending, ties by the word; min_freq, vocab_size)."""
        normalize = self._normalizer(training=False).normalize_str
        counts: dict[str, int] = {}
        for sentence in sentences:
            for word in sentence:
                form = normalize(word)
                counts[form] = counts.get(form, 0) + 1
        specials = self.specials
        ranked = sorted(
            (w for w, n in counts.items() if n >= self.config.min_freq and w not in specials),
            key=lambda w: (-counts[w], w),
        )[: max(self.config.vocab_size - len(specials), 0)]
        vocab = {w: i for i, w in enumerate([*specials, *ranked])}
        self._finish(vocab, self._pre_tokenizer())

    def encode_words(self, sentences: list[list[str]]) -> list[list[int]]:
        """One id per given word (tagging: the words are already split); a word not in the
        vocabulary (or a literal special) -> ``<unk>``. No ``<eos>`` is appended."""
        tok = self._fitted()
        if getattr(self, "_index", None) is None:
            vocab = tok.get_vocab()
            self._index = {w: i for w, i in vocab.items() if i >= len(self.specials)}
        index, normalize, memo = self._index, tok.normalizer.normalize_str, {}
        rows = []
        for sentence in sentences:
            row = []
            for word in sentence:
                if word not in memo:
                    memo[word] = index.get(normalize(word), UNK_ID)
                row.append(memo[word])
            rows.append(row)
        return rows

    def _fitted(self) -> Any:
        if self._tok is None:
            raise not_fitted(NAME)
        return self._tok

    # -- use ---------------------------------------------------------------------------
    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids per text; with ``eos=true`` each ends with ``<eos>`` (even an empty text)."""
        tok = self._fitted()
        # encode_batch_fast (tokenizers >= 0.20) skips the offsets: ~1.5x faster, same ids.
        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        texts = ["" if t is None else t for t in texts]
        long = {i for i, t in enumerate(texts) if len(t) > PIECE_CHARS}
        rows = [e.ids for e in encode(["" if i in long else t for i, t in enumerate(texts)])]
        for i in long:
            rows[i] = self._encode_long(texts[i], encode)
        return rows

    def _encode_long(self, text: str, encode: Any) -> list[int]:
        """The ids of a long text, encoded a few pieces at a time: the same ids, but a 10 MB
        text takes tens of MB instead of ~700 MB (an Encoding keeps much more than its ids)."""
        ids: list[int] = []
        pieces = _pieces([text])
        while batch := list(itertools.islice(pieces, 16)):
            for encoding in encode(batch, add_special_tokens=False):
                ids += encoding.ids
        if self.config.eos:
            ids.append(EOS_ID)
        return ids

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def tokenize(self, text: str) -> list[str]:
        """The words of ``text`` before the vocabulary lookup (a literal special: ``<unk>``)."""
        tok = self._fitted()
        normalized = tok.normalizer.normalize_str("" if text is None else text)
        added = {t.content for t in tok.get_added_tokens_decoder().values()}
        pieces = re.split(f"({_alternation(sorted(added))})", normalized) if added else [normalized]
        words: list[str] = []
        for piece in pieces:
            if piece in added:
                words.append(piece)
            elif piece:
                words += [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(piece)]
        return words

    def decode(self, ids: list[int]) -> str:
        """The words joined by spaces; specials (<pad>, <unk>, <eos>) are dropped."""
        tok = self._fitted()
        first = len(self.specials)
        return " ".join(tok.id_to_token(int(i)) for i in ids if int(i) >= first)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size() if self._tok is not None else len(self.specials)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def eos_id(self) -> int | None:
        """The id appended to every text (2), or None without ``eos``."""
        return EOS_ID if self.config.eos else None

    def vocab(self) -> list[str]:
        """Tokens in id order."""
        tok = self._fitted()
        return [tok.id_to_token(i) for i in range(tok.get_vocab_size())]

    def fingerprint(self) -> str:
        return fingerprint(NAME, VERSION, self.config, self._fitted().to_str())

    # -- files -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        tok = self._fitted()
        write_config(directory, NAME, self.config)
        tok.save(str(Path(directory) / HF_FILE))

    @classmethod
    def load(cls, directory: str | Path) -> WordTokenizer:
        from tokenizers import Tokenizer

        # Files saved before split/eos existed read back as split=words, eos=false: what
        # they were fitted with. Their tokenizer.json keeps its own normalizer and split.
        self = cls(read_config(directory, WordTokenizerConfig))
        self._tok = Tokenizer.from_file(str(Path(directory) / HF_FILE))
        return self

    def __repr__(self) -> str:
        state = f"vocab_size={self.vocab_size}" if self._tok is not None else "not fitted"
        return f"WordTokenizer({state}, config={self.config})"
