"""Property tests (Hypothesis) for the parts every input goes through: the tokenizers,
batching and collation, and the poolers.

Examples are few (``max_examples``) and have no deadline, so the file runs in seconds.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plugins.tokenizers.word as word_module
from pipeline import registry
from pipeline.contracts import EncoderOutput
from pipeline.data.batching import EncodedSplit, batch_order, iterate_batches

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
TOKENIZERS = ["word", "basic_english", "char"]
CORPUS = [
    "A gripping film, with a plot that never lets go!",
    "Dull and far too long... the actors look bored.",
    "<br />Café crème: naïve, 中文 and emoji 😀 too",
    'it\'s a 10/10 -- "must see" (really)',
    "the the the film film plot",
]

# Any Unicode text: Hypothesis' text() never yields surrogates (not valid in UTF-8).
any_text = st.text(max_size=200)
long_text = st.builds(
    lambda piece, n: piece * n, st.text(min_size=1, max_size=40), st.integers(1, 3000)
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and spins no cores on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def fitted(name: str, **config):
    entry = registry.tokenizers.get(name)
    tokenizer = entry.cls(entry.config(name=name, min_freq=1, **config))
    tokenizer.fit(CORPUS)
    return tokenizer


def check_ids(tokenizer, ids: list[int]) -> None:
    assert all(isinstance(i, int) for i in ids)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.pad_id not in ids  # padding only ever comes from batching


# -- tokenizers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOKENIZERS)
@FAST
@given(texts=st.lists(st.one_of(any_text, long_text), max_size=4))
def test_encode_never_crashes_and_ids_are_in_the_vocabulary(name, texts):
    tokenizer = fitted(name)
    rows = tokenizer.encode_batch(texts)
    assert len(rows) == len(texts)
    for text, ids in zip(texts, rows, strict=True):
        check_ids(tokenizer, ids)
        assert tokenizer.encode_batch([text]) == [ids]  # a batch changes nothing
        decoded = tokenizer.decode(ids)
        assert isinstance(decoded, str)
    assert tokenizer.encode_batch([""]) == [[]]


@FAST
@given(data=st.data())
def test_char_round_trips_text_of_its_characters(data):
    tokenizer = fitted("char")
    alphabet = tokenizer.vocab()[2:]  # after <pad>, <unk>
    text = data.draw(st.text(alphabet=alphabet, max_size=300))
    ids = tokenizer.encode_batch([text])[0]
    assert len(ids) == len(text) and tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == text


@FAST
@given(text=st.one_of(any_text, long_text))
def test_char_gives_one_id_per_character(text):
    tokenizer = fitted("char")
    ids = tokenizer.encode_batch([text])[0]
    assert len(ids) == len(text)
    known = set(tokenizer.vocab()[2:])
    assert [i == tokenizer.unk_id for i in ids] == [c not in known for c in text]


@pytest.mark.parametrize("name", ["word", "basic_english"])
@FAST
@given(data=st.data())
def test_words_of_the_vocabulary_round_trip(name, data):
    tokenizer = fitted(name)
    words = data.draw(st.lists(st.sampled_from(tokenizer.vocab()[2:]), max_size=30))
    text = " ".join(words)
    ids = tokenizer.encode_batch([text])[0]
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == text


FRAGMENTS = ["good", "Bad", "<br />", "<BR  />", "<br>", "<br", "/>", "<pad>", "<unk>", "!!"]
FRAGMENTS += ["...", "é", "中", " ", "  ", "\n", "\t", "a-b", "x"]


@FAST
@given(
    texts=st.lists(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join), max_size=3),
    piece=st.integers(1, 16),
    split=st.sampled_from(["words", "whitespace"]),
    eos=st.booleans(),
)
def test_word_fits_and_encodes_long_texts_in_pieces_exactly(texts, piece, split, eos):
    """Long texts are fitted and encoded cut at whitespace: the vocabulary and the ids must be
    those of the whole texts."""
    config = word_module.WordTokenizerConfig(name="word", min_freq=1, split=split, eos=eos)
    saved = word_module.PIECE_CHARS
    try:
        word_module.PIECE_CHARS = 1 << 30
        whole = word_module.WordTokenizer(config)
        whole.fit(texts)
        whole_ids = whole.encode_batch(texts)
        word_module.PIECE_CHARS = piece
        pieces = word_module.WordTokenizer(config)
        pieces.fit(texts)
        assert pieces.vocab() == whole.vocab()
        assert pieces.encode_batch(texts) == whole_ids
        assert "".join(word_module._pieces(texts)) == "".join(texts)
    finally:
        word_module.PIECE_CHARS = saved


# -- batching and collation ------------------------------------------------------------------

lengths_strategy = st.lists(st.integers(0, 12), max_size=40)


def rows_of(lengths: list[int], seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 50, size=n).tolist() for n in lengths]


def flat(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    values = np.array([i for r in rows for i in r], dtype=np.int64)
    return values, offsets


@FAST
@given(
    lengths=lengths_strategy,
    batch_size=st.integers(1, 9),
    bucket_size=st.integers(1, 4),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_batch_order_covers_every_row_exactly_once(lengths, batch_size, bucket_size, shuffle, seed):
    generator = torch.Generator().manual_seed(seed)
    order = batch_order(
        torch.tensor(lengths, dtype=torch.int64),
        batch_size,
        shuffle=shuffle,
        bucket_size=bucket_size,
        generator=generator,
    )
    seen = [int(i) for batch in order for i in batch]
    assert sorted(seen) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= batch_size for batch in order)
    if not shuffle:  # evaluation: by length
        assert [lengths[i] for i in seen] == sorted(lengths)


@FAST
@given(lengths=lengths_strategy, pad_id=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_from_flat_pads_every_row_on_the_right(lengths, pad_id, seed):
    rows = rows_of(lengths, seed)
    values, offsets = flat(rows)
    labels = torch.arange(len(rows))
    split = EncodedSplit.from_flat(values, offsets, pad_id, labels)
    assert split.ids.shape == (len(rows), max([1, *lengths]))
    assert split.lengths.tolist() == lengths
    for row, ids in zip(rows, split.ids.tolist(), strict=True):
        assert ids[: len(row)] == row
        assert ids[len(row) :] == [pad_id] * (len(ids) - len(row))


@FAST
@given(lengths=lengths_strategy, batch_size=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_batches_have_masks_that_match_the_lengths(lengths, batch_size, seed):
    rows = rows_of(lengths, seed)
    split = EncodedSplit.from_flat(*flat(rows), 0, torch.arange(len(rows)))
    lengths_t = torch.tensor(lengths, dtype=torch.int64)
    order = batch_order(lengths_t, batch_size, shuffle=True, bucket_size=2)
    batches = list(iterate_batches(split, order, torch.device("cpu")))
    assert len(batches) == len(order)
    for index, batch in zip(order, batches, strict=True):
        want = lengths_t[index]
        assert batch.ids.shape == batch.mask.shape
        assert batch.ids.size(1) == max(int(want.max()), 1)  # trimmed to the longest row
        assert batch.mask.sum(dim=1).tolist() == want.tolist()
        for r, n in enumerate(want.tolist()):
            assert batch.mask[r, :n].all() and not batch.mask[r, n:].any()
            assert batch.ids[r, :n].tolist() == rows[int(index[r])]
        assert batch.labels.tolist() == index.tolist()


# -- poolers ---------------------------------------------------------------------------------

POOLERS = ["last", "mean", "max", "auto", "attention"]


@functools.cache
def pooler(name: str, dim: int):
    torch.manual_seed(0)
    entry = registry.poolers.get(name)
    return entry.cls(entry.config(name=name), dim).eval()


@FAST
@given(
    lengths=st.lists(st.integers(0, 10), min_size=1, max_size=8),
    extra=st.integers(0, 3),
    dim=st.integers(1, 6),
    scale=st.sampled_from([1e-3, 1.0, 1e3, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_poolers_ignore_padding_and_survive_empty_rows(lengths, extra, dim, scale, seed):
    """Whatever the padded positions hold, every pooler gives the same output; a zero-length
    row pools to zeros, never NaN."""
    generator = torch.Generator().manual_seed(seed)
    steps = max(lengths) + extra
    sequence = torch.randn(len(lengths), max(steps, 1), dim, generator=generator)
    mask = torch.arange(sequence.size(1))[None] < torch.tensor(lengths)[:, None]
    noisy = sequence.clone()
    noise = torch.randn(sequence.shape, generator=generator) * scale
    noisy[~mask] = noise[~mask]
    empty = torch.tensor(lengths) == 0
    for name in POOLERS:
        with torch.no_grad():
            clean = pooler(name, dim)(EncoderOutput(sequence), mask)
            changed = pooler(name, dim)(EncoderOutput(noisy), mask)
        assert clean.shape == (len(lengths), dim), name
        assert torch.isfinite(clean).all() and torch.isfinite(changed).all(), name
        assert torch.allclose(changed, clean, rtol=1e-5, atol=1e-6), (name, changed, clean)
        assert (clean[empty] == 0).all(), name
