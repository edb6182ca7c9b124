"""Language-model head: features [B, T, H] -> next-token logits [B, T, vocab_size].

Dropout -> (projection) -> Linear(vocab_size). With ``tie_weights=true`` the model builder
calls ``head.tie(embedding.weight)`` and the output layer shares the embedding table
(Press & Wolf 2017, "Using the Output Embedding to Improve Language Models"; Inan et al.
2017): one [vocab_size, emb_dim] matrix embeds the inputs and scores the outputs, which
saves vocab_size x emb_dim parameters and usually lowers perplexity.
"""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.contracts import Head
from pipeline.errors import ConfigError
from plugins.heads.configs import LMHeadConfig


class LMHead(Head):
    """Dropout -> [Linear(input_dim -> emb_dim, no bias) once tied] -> Linear(-> vocab).

    ``num_outputs`` is the vocabulary size. ``forward`` takes [B, T, input_dim] (or
    [N, input_dim]) and returns logits with the last axis replaced by ``num_outputs``.

    ``tie(weight)`` makes the output layer use ``weight``, the embedding's
    [vocab_size, emb_dim] table (the same ``nn.Parameter`` object, so both uses train it).
    If ``emb_dim != input_dim`` it also inserts ``projection``, a bias-free
    Linear(input_dim -> emb_dim), so that tying works whatever the encoder's width. The
    output layer keeps its own bias of size vocab_size.
    """

    def __init__(self, config: LMHeadConfig, input_dim: int, num_outputs: int) -> None:
        super().__init__(config, input_dim, num_outputs)
        self.dropout = nn.Dropout(config.dropout)
        self.projection: nn.Module = nn.Identity()
        self.output = nn.Linear(input_dim, num_outputs)
        self.tied = False

    def tie(self, weight: Tensor | None) -> None:
        """Share ``weight`` ([vocab_size, emb_dim], the embedding table) as the output weights."""
        if weight is None:
            raise ConfigError(
                "head.tie_weights=true needs an embedding with a lookup table to share, and "
                "this embedding has none (its weight is None). Set head.tie_weights=false."
            )
        if not isinstance(weight, nn.Parameter):
            raise TypeError(
                f"LMHead.tie wants the embedding's nn.Parameter, got {type(weight).__name__}"
            )
        if weight.dim() != 2:
            raise ConfigError(
                f"head.tie_weights=true needs a [vocab_size, dim] embedding table; got shape "
                f"{tuple(weight.shape)}."
            )
        vocab_size, emb_dim = weight.shape
        if vocab_size != self.num_outputs:
            raise ConfigError(
                f"head.tie_weights=true: the embedding table has {vocab_size} rows but the "
                f"head predicts {self.num_outputs} tokens; both must be the tokenizer's "
                "vocab_size. Set head.tie_weights=false or build both from one tokenizer."
            )
        if emb_dim != self.input_dim:
            self.projection = nn.Linear(self.input_dim, emb_dim, bias=False).to(
                device=weight.device, dtype=weight.dtype
            )
        else:
            self.projection = nn.Identity()
        output = nn.Linear(emb_dim, vocab_size, device="meta")  # no throwaway weight
        output.weight = weight
        output.bias = self.output.bias  # keep the bias (already vocab_size long)
        self.output = output
        self.tied = True

    def forward(self, features: Tensor) -> Tensor:
        return self.output(self.projection(self.dropout(features)))
