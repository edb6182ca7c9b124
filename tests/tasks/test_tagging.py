"""task=tagging: one id per word, padding never counted, OOV accuracy, the task kit, span F1,
words' characters for an embedding that reads them, and a tiny end-to-end run."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from pipeline import registry
from pipeline.config.schemas import TaskConfig, TrainerConfig, typed
from pipeline.contracts import Embedding
from pipeline.errors import ConfigError
from pipeline.registry import ComponentConfig
from pipeline.run.runner import run
from pipeline.tasks.tagging import TaggingTask
from pipeline.tasks.tagging_eval import TagBatch, TaggedSplit, evaluate_tagger, token_loss
from pipeline.testing import check_task
from pipeline.training.context import local_context
from plugins.tokenizers.word import WordTokenizer, WordTokenizerConfig
from tests.run.test_runner import composed, in_tmp  # noqa: F401 (a fixture)
from tests.test_plugin_components import scratch_registries  # noqa: F401 (a fixture)

LEXICON = {"the": "DET", "a": "DET", "dog": "NOUN", "cat": "NOUN", "sees": "VERB"}
LEXICON |= {"runs": "VERB", "well-known": "ADJ", "don't": "AUX", ".": "PUNCT"}


def toy_sentences(path, n: int, seed: int, extra: tuple[str, ...] = ()) -> str:
    """CoNLL-2003 style sentences whose tag is a function of the word: learnable at once."""
    rng = random.Random(seed)
    words = list(LEXICON) + list(extra)
    lines = []
    for _ in range(n):
        sentence = rng.choices(words, k=rng.randint(1, 8))
        lines.append("\n".join(f"{w}\t{LEXICON.get(w, 'NOUN')}" for w in sentence))
    path.write_text("\n\n".join(lines) + "\n")
    return str(path)


def prepared(
    folder, *overrides: str, test_words: tuple[str, ...] = (), test_text: str = ""
) -> TaggingTask:
    """A tagging task prepared in this process on toy files (no Hydra run, no tracker)."""
    train = toy_sentences(folder / "train.txt", 60, 0)
    validation = toy_sentences(folder / "validation.txt", 12, 1)
    test = toy_sentences(folder / "test.txt", 12, 2, extra=test_words)
    if test_text:
        (folder / "test.txt").write_text(test_text)
    cfg = composed(
        "task=tagging",
        "data=files",
        f"data.train={train}",
        f"data.validation={validation}",
        f"data.test={test}",
        "tokenizer.min_freq=1",
        *overrides,
    )
    trainer = TrainerConfig(batch_size=4, bucket_size=2, eval_batch_size=8, device="cpu")
    ctx = local_context(trainer, checkpoint_dir=folder, task=typed(TaskConfig, cfg.task, "task"))
    ctx.cfg = cfg
    task = TaggingTask(cfg)
    task.prepare(ctx)
    return task


def test_the_word_tokenizer_gives_one_id_per_given_word():
    tokenizer = WordTokenizer(WordTokenizerConfig(name="word", min_freq=1, lowercase=False))
    tokenizer.fit_words([["well-known", "don't", "U.S.", "Dog"], ["dog", "<pad>"]])
    ids = tokenizer.encode_words([["well-known", "don't", "U.S.", "Dog", "dog", "cat", "<pad>"]])
    assert len(ids[0]) == 7
    assert len(set(ids[0][:5])) == 5 and 1 not in ids[0][:5]  # each word whole, case kept
    assert ids[0][5:] == [1, 1]  # unseen, and a literal special: <unk>, never padding
    lower = WordTokenizer(WordTokenizerConfig(name="word", min_freq=1, lowercase=True))
    lower.fit_words([["Dog", "dog"]])
    assert lower.encode_words([["DOG", "dog"]]) == [[2, 2]]


def test_zero_digits_makes_unseen_numbers_known():
    config = WordTokenizerConfig(name="word", min_freq=1, lowercase=False, zero_digits=True)
    tokenizer = WordTokenizer(config)
    tokenizer.fit_words([["in", "2019", "A4"]])
    assert tokenizer.encode_words([["1984", "A7", "2019"]]) == tokenizer.encode_words(
        [["2019", "A4", "1066"]]
    )
    assert 1 not in tokenizer.encode_words([["1984", "A7"]])[0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=12), max_size=10), max_size=6))
def test_no_word_is_lost_or_split(sentences):
    tokenizer = WordTokenizer(WordTokenizerConfig(name="word", min_freq=1, lowercase=False))
    tokenizer.fit_words(sentences)
    ids = tokenizer.encode_words(sentences)
    assert [len(row) for row in ids] == [len(sentence) for sentence in sentences]


def batch_of(rows: list[list[int]], tags: list[list[int]]) -> TagBatch:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    target = torch.tensor([t + [-1] * (width - len(t)) for t in tags])
    mask = target >= 0
    return TagBatch(ids, mask, target, torch.zeros_like(mask))


def test_padding_never_counts_in_the_loss_or_the_accuracy():
    batch = batch_of([[1, 2, 3], [4]], [[0, 1, 2], [1]])
    logits = torch.randn(2, 3, 3)
    alone = token_loss(logits[1:, :1], batch_of([[4]], [[1]]))
    first = token_loss(logits[:1], batch_of([[1, 2, 3]], [[0, 1, 2]]))
    garbage = logits.clone()
    garbage[1, 1:] = 1e4  # whatever the model says at padding
    assert torch.allclose(token_loss(garbage, batch), first + alone)

    class Oracle(nn.Module):  # right on real words, wrong (tag 2) at padding
        def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
            truth = torch.where(ids == 4, 1, ids - 1).clamp(0, 2)
            return nn.functional.one_hot(truth.masked_fill(~mask, 2), 3).float()

    split = TaggedSplit(batch.ids, batch.tags, torch.tensor([3, 1]), batch.oov)
    result = evaluate_tagger(Oracle(), split, batch_size=2, device=torch.device("cpu"), num_tags=3)
    assert result.accuracy == 1.0 and int(result.confusion.sum()) == 4


def test_oov_accuracy_counts_exactly_the_words_unseen_in_training(in_tmp):  # noqa: F811
    task = prepared(in_tmp, test_words=("Dog", "zebra"))
    test = task.splits["test"]
    words = [w for ws, _ in task.sentences["test"] for w in ws]
    flags = test.oov[test.tags >= 0].tolist()
    assert flags == [w in ("Dog", "zebra") for w in words]  # case-sensitive, as in the file
    model = task.build_model(task.ctx)
    result = evaluate_tagger(
        model, test, batch_size=8, device=torch.device("cpu"), num_tags=len(task.tags)
    )
    guess = [t for row in result.predicted for t in row]
    gold = test.tags[test.tags >= 0].tolist()
    right = [g == t for g, t, oov in zip(guess, gold, flags, strict=True) if oov]
    assert result.oov_words == len(right) > 0
    assert result.oov_accuracy == pytest.approx(sum(right) / len(right))


def test_a_tag_unseen_in_training_counts_as_an_error(in_tmp):  # noqa: F811
    task = prepared(in_tmp, test_text="the\tDET\ndog\tNOUN\nwow\tINTJ\n")
    assert task.tags[-1] == "INTJ" and "INTJ" not in task.train_tags
    metrics = task.evaluate(task.build_model(task.ctx), "test")
    confusion = task.evaluations["test"].confusion
    assert int(confusion.sum()) == 3 and int(confusion[-1].sum()) == 1  # counted...
    assert int(confusion[-1, -1]) == 0 and metrics["accuracy"] <= 2 / 3  # ...and wrong


def test_word_dropout_turns_training_words_into_unk_never_padding(in_tmp):  # noqa: F811
    task = prepared(in_tmp, "task.word_dropout=1e9")  # every word's chance ~ 1
    batch, _ = next(iter(task.train_batches(1, 0).batches))
    dropped = task._drop_words(batch)
    assert (dropped.ids[batch.mask] == task.tokenizer.unk_id).all()
    assert (dropped.ids[~batch.mask] == task.tokenizer.pad_id).all()
    assert task.unk_chance[task.tokenizer.pad_id] == 0
    model = task.build_model(task.ctx).eval()
    task._drop_words = None  # evaluation never drops a word: calling it would fail
    task.loss(model, (batch, 1), None)
    off = in_tmp / "off"
    off.mkdir()
    assert (
        prepared(off, "task.word_dropout=0").unk_chance is None
    )  # task.word_dropout=0, the default: off


def test_the_tagging_task_passes_the_task_kit(in_tmp):  # noqa: F811
    task = prepared(in_tmp)
    check_task(task, task.build_model(task.ctx)).assert_ok()


def test_a_tokenizer_without_encode_words_is_refused(in_tmp):  # noqa: F811
    with pytest.raises(ConfigError, match="tokenizer=char .*encode_words.*tokenizer=word"):
        prepared(in_tmp, "tokenizer=char")


def test_bio_span_scores_are_seqeval_s():
    from seqeval.metrics import f1_score

    from pipeline.tasks.tagging_eval import is_bio, span_scores

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    guess = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    scores = span_scores(gold, guess)  # spans right: PER, ORG of 3 gold, 3 predicted
    assert scores["span_f1"] == pytest.approx(2 / 3) == pytest.approx(f1_score(gold, guess))
    assert scores["span_precision"] == scores["span_recall"] == pytest.approx(2 / 3)
    assert is_bio(["O", "B-PER", "I-PER"]) and not is_bio(["NOUN", "VERB"])


@dataclass
class CharConfig(ComponentConfig):
    dim: int = 8
    dropout: float = 0.0
    max_word_length: int = 4


class FakeCharEmbedding(Embedding):
    """Word vectors plus the count of real characters of each word; records what it gets."""

    uses_characters = True
    seen: list[Tensor] = []

    def __init__(self, config: CharConfig, vocab_size: int, pad_id: int, num_chars: int):
        super().__init__(config, vocab_size, pad_id)
        self.table, self.num_chars = nn.Embedding(vocab_size, config.dim), num_chars
        self.output_dim = config.dim + 1

    def forward(self, ids: Tensor, chars: Tensor) -> Tensor:
        FakeCharEmbedding.seen.append(chars)
        assert chars.dtype == torch.long and int(chars.max()) < self.num_chars
        return torch.cat([self.table(ids), (chars > 0).sum(-1, keepdim=True).float()], -1)


def test_a_char_embedding_receives_each_words_characters(in_tmp, scratch_registries):  # noqa: F811
    registry.embeddings.register("test_chars", config=CharConfig)(FakeCharEmbedding)
    task = prepared(in_tmp, "embedding=test_chars")
    model = task.build_model(task.ctx)
    FakeCharEmbedding.seen.clear()
    batch, _ = next(iter(task.train_batches(1, 0).batches))
    task.loss(model, (batch, 1), None)
    (chars,) = FakeCharEmbedding.seen
    lengths = batch.mask.sum(1)
    words = {tuple(row): w for w, row in zip(*_encoded(task), strict=True)}
    assert chars.shape[:2] == batch.ids.shape and chars.shape[2] <= 4  # max_word_length
    for b in range(chars.size(0)):
        assert not chars[b, int(lengths[b]) :].any()  # padded words: all 0
        for t in range(int(lengths[b])):
            assert tuple(chars[b, t].tolist()) in words  # the ids of a real word, cut at 4
    assert (task.tokenizer_dir / "characters.json").is_file()


def _encoded(task: TaggingTask) -> tuple[list[str], list[list[int]]]:
    words = sorted(LEXICON)
    width = task.splits["train"].form_chars.size(1)
    return words, task.characters.encode(words, width).tolist()


def test_classification_refuses_an_embedding_that_reads_characters(scratch_registries):  # noqa: F811
    from pipeline.model.assembly import build_model

    registry.embeddings.register("test_chars", config=CharConfig)(FakeCharEmbedding)
    cfg = composed("task=sentiment", "embedding=test_chars")
    with pytest.raises(ConfigError, match="embedding=test_chars reads characters; only task=t"):
        build_model(cfg, 10, 0, 2)


def test_a_tiny_tagging_run_logs_its_metrics_and_artifacts(in_tmp, data_dir, mlflow_store):  # noqa: F811
    from mlflow import MlflowClient

    cfg = composed(
        "task=tagging",
        f"data.dir={data_dir}",
        "data.max_train_sentences=200",
        "data.max_eval_sentences=50",
        "trainer.max_epochs=1",
        "tracking=mlflow",
        f"tracking.uri={mlflow_store}",
        "tracking.log_model=false",
    )
    result = run(cfg)
    names = ("accuracy", "f1", "oov_accuracy", "loss")
    assert {f"test/{m}" for m in names} <= set(result.metrics)
    assert all(0 <= result.metrics[f"test/{m}"] <= 1 for m in names[:3])
    logged = MlflowClient(mlflow_store).get_run(result.run_id).data.metrics
    assert {"val/accuracy", "val/f1", "test/accuracy", "test/oov_accuracy"} <= set(logged)
    for path in ("reports/tag_report.json", "reports/tag_report.txt", "plots/confusion_matrix.png"):
        assert (result.output_dir / path).is_file(), path
    saved = torch.load(result.best_checkpoint, weights_only=True)
    assert saved["config"]["task"]["type"] == "tagging" and len(saved["labels"]) == 17
    assert saved["config"]["encoder"]["bidirectional"] is True  # the task's suggestions
    assert saved["config"]["tokenizer"]["zero_digits"] is True


def test_a_classification_task_refuses_tagged_data_naming_task_tagging():
    from pipeline.run.runner import validate

    with pytest.raises(ConfigError, match="task=tagging"):
        validate(composed("data=ud_ewt"))
