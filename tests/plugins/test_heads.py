"""The classifier head's optional hidden layer: off it is today's head; on it trains."""

import pytest
import torch
from torch import nn

from pipeline import registry
from plugins.dropout import Dropout


def build(dim: int = 6, classes: int = 3, **fields):
    entry = registry.heads.get("classifier")
    return entry.cls(entry.config(name="classifier", **fields), dim, classes)


def _train_outputs(head, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)  # the same dropout draws
    return head.train()(x)


@pytest.mark.parametrize("hidden_size", [0, 5])
def test_new_options_left_at_their_defaults_build_the_same_head(hidden_size):
    torch.manual_seed(0)
    before = build(hidden_size=hidden_size)
    torch.manual_seed(0)
    after = build(hidden_size=hidden_size, hidden_dropout=None, batch_norm=False, activation="relu")
    assert [type(m) for m in after.layers] == [type(m) for m in before.layers]
    expected = [Dropout, nn.Linear] + ([nn.ReLU, Dropout, nn.Linear] if hidden_size else [])
    assert [type(m) for m in before.layers] == expected
    x = torch.randn(4, 6)
    assert torch.equal(_train_outputs(before, x), _train_outputs(after, x))


def test_without_a_hidden_layer_its_options_change_nothing():
    torch.manual_seed(0)
    plain = build()
    torch.manual_seed(0)
    ignored = build(hidden_dropout=0.5, batch_norm=True, activation="gelu")
    assert plain.state_dict().keys() == ignored.state_dict().keys()
    x = torch.randn(4, 6)
    assert torch.equal(_train_outputs(plain, x), _train_outputs(ignored, x))


def test_hidden_layer_with_batch_norm_builds_and_trains():
    torch.manual_seed(0)
    head = build(hidden_size=8, hidden_dropout=0.1, batch_norm=True, activation="gelu")
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == ["Dropout", "Linear", "BatchNorm", "GELU", "Dropout", "Linear"]
    assert head.layers[4].p == 0.1 and head.layers[0].p == 0.3
    x = torch.randn(64, 6)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)

    def eval_loss() -> float:  # without dropout's noise: what training reached
        with torch.no_grad():
            return nn.functional.cross_entropy(head.eval()(x), y).item()

    before = eval_loss()
    for _ in range(40):
        loss = nn.functional.cross_entropy(head.train()(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss() < 0.6 * before
    assert head.layers[2].running_mean.abs().sum() > 0  # the statistics were tracked
    assert head.train()(x[:1]).shape == (1, 3)  # a one-row training batch does not fail
    head.eval()
    assert torch.equal(head(x[:5]), head(x[:5]))
