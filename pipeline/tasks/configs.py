"""The task kinds' config dataclasses (no torch here: ``--help`` and config errors stay fast).

A kind is declared with ``TaskConfig`` or a subclass of it; a subclass may add the kind's own
``task.*`` settings and suggest settings of other groups (``suggested_settings``), which the
run applies, where the chosen option has the key and the user left it, before any section is
read (so a resumed run sees them too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config.schemas import TaskConfig


@dataclass
class TaggingTaskConfig(TaskConfig):
    """``task.type=tagging``."""

    def suggested_settings(self) -> dict[str, Any]:
        """A word's tag depends on the words after it too (a bidirectional encoder), and
        numbers unseen in train become known with their digits as 0. Suggested rather than
        preset: ``encoder=cnn`` or ``tokenizer=char`` have no such key."""
        return {"encoder.bidirectional": True, "tokenizer.zero_digits": True}
