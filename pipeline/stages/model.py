"""Build the model: embedding -> encoder -> pooler -> head, each from its registry.

Dimensions flow forward (the encoder's input is the embedding's output, and so on), so
configs never repeat them.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from pipeline import registry


class SequenceClassifier(nn.Module):
    """Token ids [B, T] + mask [B, T] -> class logits [B, C]."""

    def __init__(
        self, embedding: nn.Module, encoder: nn.Module, pooler: nn.Module, head: nn.Module
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.pooler = pooler
        self.head = head

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.embedding(ids)  # [B, T, E]
        output = self.encoder(x, mask)  # sequence [B, T, H]
        return self.head(self.pooler(output, mask))  # [B, H'] -> [B, C]


def component_configs(cfg: Any) -> dict[str, Any]:
    """The validated config dataclass of every model component, by group."""
    return {
        group: registry.ALL[group].config_from(cfg[group])
        for group in ("embedding", "encoder", "pooler", "head")
    }


def build_model(cfg: Any, vocab_size: int, pad_id: int, num_classes: int) -> SequenceClassifier:
    """Instantiate the classifier described by the composed config ``cfg``."""
    configs = component_configs(cfg)
    build = {g: registry.ALL[g].get(c.name).cls for g, c in configs.items()}
    embedding = build["embedding"](configs["embedding"], vocab_size, pad_id)
    encoder = build["encoder"](configs["encoder"], embedding.output_dim)
    pooler = build["pooler"](configs["pooler"], encoder.output_dim)
    head = build["head"](configs["head"], pooler.output_dim, num_classes)
    return SequenceClassifier(embedding, encoder, pooler, head)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
