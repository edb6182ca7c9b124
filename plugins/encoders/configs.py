"""Configs of the encoders in this package, with no torch import: the plugin loads them at
start-up; each class is imported only when a run builds it (``declare`` in ``plugins``)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.registry import ComponentConfig, describe


@dataclass
class RNNConfig(ComponentConfig):
    hidden_size: int = describe("hidden units per direction", 128, min=1)
    num_layers: int = describe("stacked recurrent layers", 1, min=1)
    bidirectional: bool = describe("also read each sequence right to left", False)
    dropout: float = describe(
        "dropout between stacked layers", 0.0, min=0.0, max=1.0, max_exclusive=True
    )
    weight_dropout: float = describe(
        "DropConnect on the hidden-to-hidden weights (AWD-LSTM): each W_hh is dropped with one "
        "mask per forward pass, in training only; the fused kernels still run and the state "
        "dict keeps the raw weights. 0 = off",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    locked_dropout: float = describe(
        "variational (locked) dropout between stacked layers and on the output: one mask per "
        "sequence and feature, the same at every time step. 0 = off",
        0.0,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )


@dataclass
class LSTMConfig(RNNConfig):
    forget_bias: float = describe(
        "added to every forget gate's bias at initialisation. torch's is about 0: the cell "
        "keeps about half of itself a step, so what it saw 100 steps ago is gone; 1 is the "
        "common choice (Jozefowicz et al. 2015), log(T) keeps a memory for about T steps "
        "(Tallec & Ollivier 2018's chrono initialisation)",
        0.0,
    )
    input_bias: float = describe(
        "added to every input gate's bias at initialisation; the chrono initialisation pairs "
        "forget_bias=log(T) with input_bias=-log(T): the cell starts keeping what it holds "
        "and writing little",
        0.0,
    )


@dataclass
class LSTMAttentionConfig(RNNConfig):
    attention_size: int = describe("size of the attention's hidden layer", 128, min=1)


@dataclass
class CNNConfig(ComponentConfig):
    widths: list[int] = describe(
        "filter widths (tokens per window); one convolution per width", [3, 4, 5]
    )
    channels: int = describe("filters (output features) per width", 100, min=1)
    dropout: float = describe(
        "dropout on the concatenated feature maps", 0.0, min=0.0, max=1.0, max_exclusive=True
    )

    def __post_init__(self) -> None:
        # Runs in ``config_from`` before any data is read.
        widths = list(self.widths) if self.widths is not None else []
        if not widths:
            raise ConfigError(
                "encoder.widths is empty: give at least one filter width, "
                "e.g. encoder.widths=[3,4,5]."
            )
        bad = [w for w in widths if isinstance(w, bool) or not isinstance(w, int) or w < 1]
        if bad:
            raise ConfigError(
                f"encoder.widths={widths} has an invalid width {bad[0]!r}: every width must "
                "be an integer >= 1, e.g. encoder.widths=[3,4,5]."
            )


@dataclass
class ScratchLSTMConfig(RNNConfig):
    peepholes: bool = describe(
        "peephole connections (Gers & Schmidhuber): the input and forget gates see c_{t-1}, "
        "the output gate sees c_t, through diagonal weights",
        False,
    )
    forget_bias: float = describe(
        "added to the forget gate's bias at initialisation (1.0 is the common choice)", 0.0
    )
    layer_norm: bool = describe(
        "layer-normalise each gate's pre-activations and the cell before the output tanh "
        "(Ba et al. 2016)",
        False,
    )


@dataclass
class TransformerConfig(ComponentConfig):
    d_model: int = describe(
        "width of every layer (the input is projected to it unless it already has it)",
        128,
        min=1,
    )
    nhead: int = describe("attention heads per layer (must divide d_model)", 4, min=1)
    num_layers: int = describe("stacked self-attention layers", 2, min=1)
    dim_feedforward: int = describe("hidden units of each layer's feed-forward block", 256, min=1)
    dropout: float = describe(
        "dropout on positions, attention weights and sub-layer outputs",
        0.1,
        min=0.0,
        max=1.0,
        max_exclusive=True,
    )
    positions: str = describe(
        "absolute positions added to the input: fixed sinusoids or a learned table",
        "sinusoidal",
        choices=["sinusoidal", "learned"],
    )
    max_positions: int = describe(
        "rows of the learned position table: the longest sequence it accepts (learned only)",
        1024,
        min=1,
    )
    norm_first: bool = describe(
        "pre-LayerNorm layers (more stable to train) plus a final LayerNorm; "
        "false: the original post-LayerNorm",
        True,
    )

    def suggested_settings(self) -> dict[str, object]:
        """Self-attention trains on small data with a smaller peak lr than an RNN and a
        warmup (Vaswani et al. 2017; Xiong et al. 2020 for pre-norm); word vectors at the
        scale of a random table, above that of the positions (``embedding.init_scale``,
        only where the embedding has it): applied unless set."""
        return {
            "optimizer.lr": 1e-3,
            "optimizer.schedule": "linear_warmup",
            "optimizer.warmup_ratio": 0.1,
            "embedding.init_scale": "table",
        }

    def __post_init__(self) -> None:
        # Runs in ``config_from`` before any data is read. Bounds (min, choices) are checked
        # right after; guard here only against what would crash this check itself.
        if (
            isinstance(self.d_model, int)
            and isinstance(self.nhead, int)
            and self.nhead >= 1
            and self.d_model % self.nhead != 0
        ):
            raise ConfigError(
                f"encoder.d_model={self.d_model} is not divisible by encoder.nhead="
                f"{self.nhead}: each head gets d_model / nhead features. Pick a d_model that "
                f"is a multiple of nhead (e.g. encoder.d_model="
                f"{max(self.nhead, self.d_model // self.nhead * self.nhead)})."
            )
