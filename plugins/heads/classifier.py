"""Classifier head: pooled features [B, H] -> logits [B, num_classes]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.contracts import Head
from plugins.dropout import Dropout
from plugins.heads.configs import ClassifierConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a one-row training batch (a data set's last, odd-sized
    batch) with the running statistics instead of failing: one row has no variance."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class ClassifierHead(Head):
    """Dropout -> [Linear -> (BatchNorm) -> activation -> Dropout] -> Linear.

    The bracketed hidden layer exists only with ``hidden_size > 0``; with it off the head
    is one dropout and one linear layer (the same modules, names and draws as ever).
    """

    def __init__(self, config: ClassifierConfig, input_dim: int, num_outputs: int) -> None:
        super().__init__(config, input_dim, num_outputs)
        layers: list[nn.Module] = [Dropout(config.dropout)]
        width = input_dim
        if config.hidden_size:
            layers.append(nn.Linear(width, config.hidden_size))
            if config.batch_norm:
                layers.append(BatchNorm(config.hidden_size))
            hidden_dropout = config.dropout
            if config.hidden_dropout is not None:
                hidden_dropout = config.hidden_dropout
            layers += [ACTIVATIONS[config.activation](), Dropout(hidden_dropout)]
            width = config.hidden_size
        layers.append(nn.Linear(width, num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)
