"""``trainer.data_on_device``: when the tokenized data lives on the device, and that its
batches are then the very same (checked on the CPU, where ``true`` takes the device path)."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pipeline.config.schemas import OptimizerConfig, TrainerConfig, typed
from pipeline.data.batching import EncodedSplit, batch_order, iterate_batches
from pipeline.data.placement import FRACTION, data_on_device
from pipeline.data.streams import make_streams, windows
from pipeline.errors import ConfigError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
GIB = 2**30


def test_auto_keeps_data_on_a_gpu_only_when_it_takes_a_small_share_of_its_free_memory():
    assert data_on_device("auto", CUDA, nbytes=100 * 2**20, free_bytes=80 * GIB)
    assert data_on_device("auto", CUDA, nbytes=int(FRACTION * 8 * GIB), free_bytes=8 * GIB)
    assert not data_on_device("auto", CUDA, nbytes=int(FRACTION * 8 * GIB) + 1, free_bytes=8 * GIB)
    assert not data_on_device("auto", CUDA, nbytes=1, free_bytes=0)  # a full GPU
    assert not data_on_device("auto", CPU, nbytes=1, free_bytes=80 * GIB)  # the CPU: as today


def test_true_and_false_are_obeyed_whatever_the_memory():
    assert data_on_device("true", CUDA, nbytes=10 * GIB, free_bytes=1 * GIB)
    assert data_on_device("true", CPU, nbytes=1)
    assert not data_on_device("false", CUDA, nbytes=1, free_bytes=80 * GIB)


@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), ("AUTO", "auto")])
def test_the_setting_accepts_yaml_booleans(value, expected):
    node = OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"data_on_device": value})
    assert typed(TrainerConfig, node, "trainer").data_on_device == expected


def test_a_wrong_setting_is_refused_by_name():
    node = OmegaConf.merge(OmegaConf.structured(TrainerConfig), {"data_on_device": "maybe"})
    with pytest.raises(ConfigError, match="trainer.data_on_device"):
        typed(TrainerConfig, node, "trainer")


def ragged_split(rows: int = 300, labelled: bool = True) -> EncodedSplit:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 30, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(2, 50, offsets[-1])
    labels = torch.from_numpy(rng.integers(0, 3, rows)) if labelled else None
    return EncodedSplit.from_flat(values, offsets, 0, labels)


def assert_same_batches(a, b) -> None:
    a, b = list(a), list(b)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.ids, y.ids) and torch.equal(x.mask, y.mask)
        assert x.ids.dtype == y.ids.dtype and x.mask.dtype == y.mask.dtype
        assert (x.labels is None and y.labels is None) or torch.equal(x.labels, y.labels)


@pytest.mark.parametrize("labelled", [True, False])
def test_batches_of_a_resident_split_are_the_host_ones(labelled):
    split = ragged_split(labelled=labelled)
    resident = split.to_device(CPU)
    assert resident.on_device is not None and split.on_device is None
    generator = torch.Generator().manual_seed(0)
    train = batch_order(split.lengths, 16, shuffle=True, bucket_size=4, generator=generator)
    evaluation = batch_order(split.lengths, 64, shuffle=False, bucket_size=1)
    for order in (train, evaluation, train[5:], [train[0][:3]]):
        assert_same_batches(
            iterate_batches(resident, order, CPU), iterate_batches(split, order, CPU)
        )
    assert list(iterate_batches(resident, [], CPU)) == []


def test_windows_of_resident_streams_are_the_host_ones():
    ids = torch.randint(1, 20, (1001,))
    host = make_streams(ids, 7, pad_id=0)
    resident = make_streams(ids.to(CPU), 7, pad_id=0).to(CPU)
    for a, b in zip(windows(host, 35, CPU), windows(resident, 35, CPU), strict=True):
        for x, y in zip(vars(a).values(), vars(b).values(), strict=True):
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y


def fit_classifier(tmp_path, data_on_device: str, **trainer_fields):
    from pipeline.model.assembly import build_model
    from pipeline.tasks.classification import ClassificationTask
    from pipeline.training.context import local_context
    from pipeline.training.loop import fit

    cfg = OmegaConf.create(
        {
            "embedding": {"name": "learned", "dim": 8, "dropout": 0.1},
            "encoder": {"name": "gru", "hidden_size": 8, "bidirectional": True},
            "pooler": {"name": "max"},
            "head": {"name": "classifier", "hidden_size": 0, "dropout": 0.0},
        }
    )
    split = ragged_split(rows=120)
    fields = {"device": "cpu", **trainer_fields}  # a GPU test passes device="cuda"
    trainer = TrainerConfig(max_epochs=2, progress="none", batch_size=16, **fields)
    trainer.data_on_device = data_on_device
    ctx = local_context(trainer, OptimizerConfig(lr=1e-2), checkpoint_dir=tmp_path / data_on_device)
    task = ClassificationTask.from_splits(ctx, {"train": split, "validation": split}, "abc")
    torch.manual_seed(0)
    model = build_model(cfg, 50, 0, 3)
    book = fit(task, model, ctx)
    return task, model, book


def test_a_classifier_trains_to_the_same_weights_with_its_data_resident(tmp_path):
    task, model, book = fit_classifier(tmp_path, "true")
    assert all(split.on_device is not None for split in task.splits.values())
    host_task, host_model, host_book = fit_classifier(tmp_path, "false")
    assert all(split.on_device is None for split in host_task.splits.values())
    assert [_numbers(e) for e in book.history] == [_numbers(e) for e in host_book.history]
    host_weights = host_model.state_dict()
    for name, weights in model.state_dict().items():
        assert torch.equal(weights, host_weights[name]), name


def _numbers(epoch: dict) -> dict:
    """An epoch's metrics but its timings."""
    return {k: v for k, v in epoch.items() if "seconds" not in k and "_per_s" not in k}


def test_a_language_model_trains_the_same_with_its_streams_resident(tmp_path):
    from tests.data.test_streams import Recorder, train_lm

    ids = torch.randint(1, 10, (301,))
    results = []
    for setting in ("true", "false"):
        torch.manual_seed(0)
        model = Recorder(vocab=10)
        trainer = TrainerConfig(
            batch_size=4, eval_batch_size=3, bptt=10, max_epochs=2, progress="none",
            monitor="val/perplexity", monitor_mode="min", data_on_device=setting,
        )  # fmt: skip
        optimizer = OptimizerConfig(name="sgd", lr=0.1, weight_decay=0.0)
        book = train_lm(model, ids, trainer, optimizer, tmp_path / setting)
        results.append(([_numbers(e) for e in book.history], model.state_dict()))
    (history, weights), (host_history, host_weights) = results
    assert history == host_history
    assert all(torch.equal(weights[k], host_weights[k]) for k in weights)
