"""Language-model head: features [B, T, H] -> next-token logits [B, T, vocab_size].

Dropout -> (projection) -> Linear(vocab_size). With ``tie_weights=true`` the model builder
calls ``head.tie(embedding.weight)`` and the output layer shares the embedding table
(Press & Wolf 2017, "Using the Output Embedding to Improve Language Models"; Inan et al.
2017): one [vocab_size, emb_dim] matrix embeds the inputs and scores the outputs, which
saves vocab_size x emb_dim parameters and usually lowers perplexity.

``softmax=adaptive``: ``torch.nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017, "Efficient
softmax approximation for GPUs") in place of the output layer. Word ids are in frequency
order, so ``cutoffs`` [2000, 10000] put the 2,000 most frequent words in the head and the
rest in two clusters whose projections are ``div_value`` and ``div_value``^2 times narrower.
``forward`` then returns exact log-probabilities over the whole vocabulary (``log_prob``:
sampling, generation and the logged model work unchanged, since a softmax of log-
probabilities is themselves), and ``loss_sum`` the summed negative log-likelihood of the
targets without building [B, T, vocab_size] scores: what training and evaluation call.
Tying is refused: the adaptive output has no [vocab_size, dim] table to share.
Under AMP the adaptive output runs in float32 (autocast off around it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.contracts import Head
from pipeline.errors import ConfigError
from plugins.dropout import Dropout
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
        self.dropout = Dropout(config.dropout)
        self.projection: nn.Module = nn.Identity()
        self.softmax = config.softmax
        self.computes_loss = config.softmax == "adaptive"  # the task calls loss_sum
        if config.softmax == "adaptive":
            self.output = nn.AdaptiveLogSoftmaxWithLoss(
                input_dim,
                num_outputs,
                cluster_cutoffs(config.cutoffs, num_outputs),
                div_value=config.div_value,
                head_bias=True,
            )
        else:
            self.output = nn.Linear(input_dim, num_outputs)
        self.tied = False

    def tie(self, weight: Tensor | None) -> None:
        """Share ``weight`` ([vocab_size, emb_dim], the embedding table) as the output weights."""
        if self.softmax == "adaptive":
            raise ConfigError(
                "head.tie_weights=true shares the embedding table as the output layer, and "
                "head.softmax=adaptive has no such layer (its clusters are narrower "
                "projections). Set head.tie_weights=false, or head.softmax=full."
            )
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
        """Logits (full softmax) or log-probabilities (adaptive), [..., vocab_size]."""
        hidden = self.projection(self.dropout(features))
        if self.softmax != "adaptive":
            return self.output(hidden)
        with no_autocast(hidden):
            flat = self.output.log_prob(hidden.reshape(-1, hidden.size(-1)).float())
        return flat.view(*hidden.shape[:-1], self.num_outputs)

    def loss_sum(self, features: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        """Summed negative log-likelihood (float32) of the real (``mask``) targets."""
        hidden = self.projection(self.dropout(features))
        flat = hidden.reshape(-1, hidden.size(-1))
        real = mask.reshape(-1)
        if self.softmax != "adaptive":
            ignored = targets.reshape(-1).masked_fill(~real, -100)
            return F.cross_entropy(self.output(flat).float(), ignored, reduction="sum")
        kept = targets.reshape(-1).masked_fill(~real, 0)  # any valid id: weighed out below
        with no_autocast(flat):
            target_log_prob = self.output(flat.float(), kept).output
        return -(target_log_prob * real.to(target_log_prob.dtype)).sum()


def no_autocast(x: Tensor) -> torch.autocast:
    """Autocast off on ``x``'s device: torch's adaptive softmax writes its clusters' half-
    precision log-probabilities into a float32 buffer (``index_copy_``), which fails under
    AMP; the head runs in float32 there (a small share of an adaptive model's work)."""
    return torch.autocast(x.device.type, enabled=False)


def cluster_cutoffs(cutoffs: list[int], vocab_size: int) -> list[int]:
    """The cutoffs below ``vocab_size``; a ``ConfigError`` unless they are increasing
    positive ids that leave at least one cluster."""
    if any(c < 1 for c in cutoffs) or list(cutoffs) != sorted(set(cutoffs)):
        raise ConfigError(
            f"head.cutoffs={list(cutoffs)} must be increasing positive word ids (where each "
            "cluster starts), e.g. head.cutoffs=[2000,10000]."
        )
    kept = [c for c in cutoffs if c < vocab_size]
    if not kept:
        raise ConfigError(
            f"head.cutoffs={list(cutoffs)} leave no cluster for a vocabulary of {vocab_size} "
            "words: set a cutoff below it (e.g. head.cutoffs=[" + str(vocab_size // 2) + "]), "
            "or head.softmax=full."
        )
    return kept
