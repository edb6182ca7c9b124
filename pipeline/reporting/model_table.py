"""The model's parts in a table, as Keras' ``summary()`` prints them: for each top-level
module (embedding, encoder, pooler, head) its class, its output width where it says, and its
parameter count; then the total and the trainable count. A parameter shared by two parts (an
LM head tied to the embedding) is counted once, under the part that holds it first."""

from __future__ import annotations

from torch import nn

#: Attributes a component states its output width by (``output_dim``; a head's outputs).
WIDTH_ATTRIBUTES = ("output_dim", "num_outputs")


def output_width(module: nn.Module) -> int | None:
    """The width of what ``module`` returns, where it says (None when it does not)."""
    for name in WIDTH_ATTRIBUTES:
        value = getattr(module, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def part_counts(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, module, parameters) for each top-level part; shared parameters counted once."""
    counts = {name: 0 for name, _ in model.named_children()}
    for name, parameter in model.named_parameters():  # each shared tensor once
        part = name.split(".", 1)[0]
        counts[part] = counts.get(part, 0) + parameter.numel()
    modules = dict(model.named_children())
    return [(name, modules.get(name, model), n) for name, n in counts.items()]


def parameter_table(model: nn.Module, device: str = "", note: str = "") -> list[str]:
    """The table's lines: one per part, then the totals (``note``: e.g. the AMP policy)."""
    rows = [
        (name, type(module).__name__, output_width(module), n)
        for name, module, n in part_counts(model)
    ]
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in unique)
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    name_w = max([len("part"), *(len(r[0]) for r in rows)])
    class_w = max([len("class"), *(len(r[1]) for r in rows)])
    count_w = max(len("parameters"), len(f"{total:,}"))
    rule = "  " + "-" * (name_w + class_w + count_w + 14)
    lines = [
        f"  {'part':<{name_w}}  {'class':<{class_w}}  {'output':>6}  {'parameters':>{count_w}}",
        rule,
    ]
    for name, cls, width, n in rows:
        shown = "?" if width is None else str(width)
        lines.append(f"  {name:<{name_w}}  {cls:<{class_w}}  {shown:>6}  {n:>{count_w},}")
    lines.append(rule)
    where = f" on {device}" if device else ""
    lines.append(f"  total {total:,} parameters ({trainable:,} trainable){where}{note}")
    return [f"model: {type(model).__name__}", *lines]
