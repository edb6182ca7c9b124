"""``embedding=pretrained``: word vectors read from files in every format (written here, never
downloaded), aligned to the vocabulary, cached, frozen or not; and word2vec trained on the
training texts, deterministic and cached."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.contracts import Vocabulary
from pipeline.errors import ConfigError, DataError, PipelineError
from plugins.embeddings import vectors as vectors_module
from plugins.embeddings.configs import PretrainedEmbeddingConfig
from plugins.embeddings.pretrained import PretrainedEmbedding
from plugins.embeddings.vectors import aligned_vectors, detect_format
from plugins.embeddings.word2vec import trained_vectors

#: In the file: "Paris" (cased: the vocabulary's "paris" finds it), "great" (the vocabulary's
#: "Great" finds it lowercased), and a word the vocabulary does not have.
WORDS = {
    "the": [0.1, 0.2, 0.3],
    "film": [-1.0, 0.5, 2.0],
    "Paris": [3.0, -2.0, 1.0],
    "great": [0.25, 0.75, -0.5],
    "elsewhere": [9.0, 9.0, 9.0],
}
TOKENS = ["<pad>", "<unk>", "the", "film", "paris", "Great", "zzz"]
EXPECTED = {2: "the", 3: "film", 4: "Paris", 5: "great"}  # vocabulary id -> word in the file


def write_vectors(path: Path, fmt: str, words: dict[str, list[float]] = WORDS) -> Path:
    """A vectors file as the tools that make them write it."""
    dim = len(next(iter(words.values())))
    if fmt == "word2vec_binary":
        with path.open("wb") as handle:
            handle.write(f"{len(words)} {dim}\n".encode())
            for word, values in words.items():
                handle.write(word.encode() + b" " + struct.pack(f"<{dim}f", *values) + b"\n")
        return path
    lines = [f"{w} " + " ".join(f"{v:.6f}" for v in values) for w, values in words.items()]
    header = [] if fmt == "glove" else [f"{len(words)} {dim}"]
    path.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    return path


class Recorder:
    """A tracker that remembers what it was given."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.tags: dict[str, str] = {}
        self.artifacts: list[tuple[Path, str | None]] = []

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append((Path(path), artifact_path))


def vocabulary(tmp_path: Path, texts: list[str] | None = None, seed: int = 0) -> Vocabulary:
    return Vocabulary(
        tokens=list(TOKENS),
        pad_id=0,
        texts=lambda: iter(texts or []),
        tokenize=str.split,
        tokenizer_fingerprint="test",
        seed=seed,
        out_dir=tmp_path,
        tracker=Recorder(),
    )


FILES = {  # file name -> (format written, format auto-detected)
    "vectors.w2v.txt": ("word2vec", "word2vec"),
    "vectors.bin": ("word2vec_binary", "word2vec_binary"),
    "glove.txt": ("glove", "glove"),
    "wiki.vec": ("fasttext", "word2vec"),  # fastText .vec is word2vec text
}


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("given", ["auto", "explicit"])
def test_every_format_puts_each_words_row_at_its_vocabulary_id(tmp_path, name, given):
    written, detected = FILES[name]
    path = write_vectors(tmp_path / name, written)
    assert detect_format(path) == detected
    fmt = "auto" if given == "auto" else written
    aligned = aligned_vectors(str(path), fmt, TOKENS, str(tmp_path / "cache"))
    assert aligned.dim == 3
    for i, word in EXPECTED.items():
        assert torch.allclose(aligned.vectors[i], torch.tensor(WORDS[word]), atol=1e-6), word
    assert aligned.found.tolist() == [False, False, True, True, True, True, False]
    assert aligned.coverage(pad_id=0) == f"4 of 6 words (66.7 %) from {name}"


def test_the_table_starts_from_the_vectors_with_oov_rows_drawn_and_padding_zero(tmp_path):
    path = write_vectors(tmp_path / "glove.txt", "glove")
    config = PretrainedEmbeddingConfig(name="pretrained", path=str(path), cache_dir=str(tmp_path))
    vocab = vocabulary(tmp_path)
    table = PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocab).table.weight
    assert table.shape == (len(TOKENS), 3) and table.requires_grad
    for i, word in EXPECTED.items():
        assert torch.allclose(table[i], torch.tensor(WORDS[word]))
    assert torch.equal(table[0], torch.zeros(3))
    assert table[1].abs().sum() > 0 and table[6].abs().sum() > 0  # <unk>, zzz: drawn
    assert vocab.tracker.metrics == {"embedding_coverage": 4 / 6, "embedding_oov": 2}
    assert vocab.tracker.tags["embedding_vectors"].startswith("4 of 6 words (66.7 %)")


def test_the_aligned_rows_are_cached_by_the_files_content(tmp_path, monkeypatch):
    path = write_vectors(tmp_path / "w.vec", "word2vec")
    cache = str(tmp_path / "cache")
    first = aligned_vectors(str(path), "auto", TOKENS, cache)

    def not_again(*args, **kwargs):
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(vectors_module, "read_vectors", not_again)
    assert torch.equal(aligned_vectors(str(path), "auto", TOKENS, cache).vectors, first.vectors)
    changed = dict(WORDS, the=[0.4, 0.2, 0.3])  # same size, other content: read again
    write_vectors(path, "word2vec", changed)
    with pytest.raises(AssertionError, match="parsed again"):
        aligned_vectors(str(path), "auto", TOKENS, cache)


def one_step(
    tmp_path: Path, freeze: bool
) -> tuple[torch.Tensor, torch.Tensor, PretrainedEmbedding]:
    """One optimizer step on embedding -> linear; the embedding table before it."""
    from pipeline.config.schemas import OptimizerConfig
    from pipeline.training.step import make_optimizer

    path = write_vectors(tmp_path / "glove.txt", "glove")
    config = PretrainedEmbeddingConfig(
        name="pretrained", path=str(path), freeze=freeze, dropout=0.0, cache_dir=str(tmp_path)
    )
    torch.manual_seed(0)
    embedding = PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocabulary(tmp_path))
    head = torch.nn.Linear(3, 2)
    model = torch.nn.ModuleDict({"embedding": embedding, "head": head})
    optimizer = make_optimizer(model.parameters(), OptimizerConfig(lr=0.1), torch.device("cpu"))
    before, head_before = embedding.table.weight.detach().clone(), head.weight.detach().clone()
    ids = torch.tensor([[2, 3, 4], [5, 6, 1]])
    loss = F.cross_entropy(head(embedding(ids).mean(1)), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert not torch.equal(head.weight, head_before)  # the step did train the model
    return before, embedding.table.weight.detach(), embedding


def test_a_frozen_embedding_does_not_move_in_a_training_step(tmp_path):
    before, after, _ = one_step(tmp_path, freeze=True)
    assert torch.equal(before, after)


def test_an_unfrozen_embedding_moves_in_a_training_step(tmp_path):
    before, after, _ = one_step(tmp_path, freeze=False)
    assert not torch.equal(before[2:4], after[2:4])


def test_a_size_other_than_the_vectors_is_an_error(tmp_path):
    path = write_vectors(tmp_path / "glove.txt", "glove")
    config = PretrainedEmbeddingConfig(name="pretrained", path=str(path), dim=5, cache_dir=".")
    with pytest.raises(ConfigError, match=r"embedding.dim=5.*3 dimensions.*embedding.dim=3"):
        PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocabulary(tmp_path))


@pytest.mark.parametrize(
    ("make", "fmt", "error", "says"),
    [
        (lambda p: p / "absent.txt", "auto", ConfigError, "does not exist"),
        (lambda p: p, "auto", ConfigError, "is a folder"),
        (lambda p: _bytes(p / "noise.bin", b"\x00\xff\xfe" * 50), "auto", DataError, "binary"),
        (lambda p: write_vectors(p / "g.txt", "glove"), "word2vec_binary", DataError, "as word"),
        (lambda p: _bytes(p / "cut.vec", b"5 3\nthe 0.1 0.2"), "auto", DataError, "complete"),
    ],
)
def test_a_missing_or_unreadable_file_is_one_line_naming_it(tmp_path, make, fmt, error, says):
    path = make(tmp_path)
    with pytest.raises(error) as raised:
        aligned_vectors(str(path), fmt, TOKENS, str(tmp_path / "cache"))
    message = str(raised.value)
    assert "\n" not in message and says in message and path.name in message


def test_no_path_and_no_training_is_an_error_saying_what_to_set(tmp_path):
    config = PretrainedEmbeddingConfig(name="pretrained", cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="embedding.path=.*embedding.train=word2vec"):
        PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocabulary(tmp_path))


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- word2vec ------------------------------------------------------------------------------

TEXTS = [
    "the film was great and the actors were great",
    "the film was dull and the plot was dull",
    "paris is a great city and the film is set in paris",
] * 20


def w2v_config(cache: Path, **changes) -> PretrainedEmbeddingConfig:
    options = {"dim": 8, "epochs": 3, "cache_dir": str(cache), **changes}
    return PretrainedEmbeddingConfig(name="pretrained", train="word2vec", **options)


def test_word2vec_is_deterministic_given_the_seed(tmp_path):
    one, fresh_one = trained_vectors(w2v_config(tmp_path / "a"), vocabulary(tmp_path, TEXTS))
    two, fresh_two = trained_vectors(w2v_config(tmp_path / "b"), vocabulary(tmp_path, TEXTS))
    assert fresh_one and fresh_two and one.read_bytes() == two.read_bytes()
    other, _ = trained_vectors(w2v_config(tmp_path / "c"), vocabulary(tmp_path, TEXTS, seed=1))
    assert other.read_bytes() != one.read_bytes()


def test_word2vec_is_cached_by_content_and_logged(tmp_path, monkeypatch, capsys):
    config = w2v_config(tmp_path / "cache")
    vocab = vocabulary(tmp_path, TEXTS)
    table = PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocab).table.weight
    assert table.shape == (len(TOKENS), 8)
    path = vocab.tracker.artifacts[0][0]
    assert path.suffix == ".vec" and vocab.tracker.artifacts == [(path, "vectors")]
    assert vocab.tracker.metrics["embedding_coverage"] == 4 / 6  # the, film, paris, great
    assert "word2vec: trained" in capsys.readouterr().out

    import gensim.models

    def no_training(*args, **kwargs):
        raise AssertionError("word2vec trained again")

    monkeypatch.setattr(gensim.models, "Word2Vec", no_training)
    again = PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocabulary(tmp_path, TEXTS))
    assert "word2vec: from cache" in capsys.readouterr().out
    assert torch.equal(again.table.weight[2:5], table[2:5])
    with pytest.raises(AssertionError, match="trained again"):  # other texts: trained anew
        trained_vectors(config, vocabulary(tmp_path, [*TEXTS, "one more text"]))


def test_word2vec_reads_extra_texts_and_names_a_missing_one(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("zzz the film\n" * 10)
    config = w2v_config(tmp_path / "cache", extra_texts=[str(extra)])
    vocab = vocabulary(tmp_path, TEXTS)
    PretrainedEmbedding(config, len(TOKENS), 0, vocabulary=vocab)
    assert vocab.tracker.metrics["embedding_coverage"] == 5 / 6  # and zzz from the extra file
    missing = w2v_config(tmp_path / "cache", extra_texts=[str(tmp_path / "gone.txt")])
    with pytest.raises(PipelineError, match="gone.txt") as raised:
        trained_vectors(missing, vocab)
    assert "\n" not in str(raised.value)
