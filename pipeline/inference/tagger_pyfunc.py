"""A trained tagger as an MLflow pyfunc model: raw sentences in, one tag per word out.

Input, as for a classifier: a table with a string column ``text``, one sentence per row
(``pd.DataFrame({"text": [...]})``; MLflow enforces the column, so a bare list of strings is
refused); served (``mlflow models serve``), ``POST /invocations``
with ``{"dataframe_records": [{"text": "..."}]}`` or ``{"inputs": {"text": [...]}}``. Each sentence
is split on whitespace only (``The dog's well-known owner`` is 4 words, never re-split), so
every word gets exactly one tag. Output: a DataFrame with one row per sentence, ``tokens``
(the words) and ``tags`` (their tags), both lists of strings of the same length; an empty
sentence gives two empty lists. Served: ``{"predictions": [{"tokens": [...], "tags": [...]},
...]}``. A text that is not a string is refused, naming its row (HTTP 400 when served).

Logged like a classifier (``pipeline.inference.pyfunc_model``): from code, with a slim
checkpoint and the tokenizer folder (with the run's characters and training words) as
artifacts; ``predict`` and ``evaluate`` rebuild it from those, running nothing stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from pipeline.inference.classifier import TEXT_COLUMN
from pipeline.inference.pyfunc_model import input_texts, log_pyfunc_model

TOKENS_COLUMN, TAGS_COLUMN = "tokens", "tags"
INPUT_EXAMPLE = ["The dog's well-known owner ran home .", "I don't know"]


class TaggerPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: ``load_context`` rebuilds the tagger from the model's artifacts."""

    def __init__(self) -> None:
        self.tagger = None  # set by load_context

    def load_context(self, context: Any) -> None:
        from pipeline.inference.tagger import tagger_from_checkpoint

        self.tagger = tagger_from_checkpoint(
            context.artifacts["checkpoint"], tokenizer_dir=context.artifacts["tokenizer"]
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        """Sentences -> DataFrame of ``tokens`` and ``tags`` (lists), one row per sentence."""
        return tag_texts(self.tagger, input_texts(model_input, TEXT_COLUMN))


def tag_texts(tagger: Any, texts: list[str]) -> pd.DataFrame:
    """Each text split on whitespace and tagged: a row of ``tokens`` and ``tags``."""
    words = [text.split() for text in texts]
    tags = tagger.tag(words)
    return pd.DataFrame(
        {TOKENS_COLUMN: words, TAGS_COLUMN: tags}, columns=[TOKENS_COLUMN, TAGS_COLUMN]
    )


def tagger_signature() -> Any:
    """One string column ``text`` in; ``tokens`` and ``tags``, arrays of strings, out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    outputs = [ColSpec(Array(DataType.string), name) for name in (TOKENS_COLUMN, TAGS_COLUMN)]
    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)]), outputs=Schema(outputs))


def log_tagger_model(
    mlflow: Any, checkpoint: Path, tokenizer_dir: Path, register_as: str | None = None
) -> Any:
    """Log the tagger to the active MLflow run (named after it); register it if asked."""
    return log_pyfunc_model(
        mlflow,
        "TaggerPyfunc",
        ("tagger.pt", Path(checkpoint), Path(tokenizer_dir)),
        register_as=register_as,
        module=__name__,
        signature=tagger_signature(),
        input_example=pd.DataFrame({TEXT_COLUMN: INPUT_EXAMPLE}),
        metadata={"task_kind": "tagging"},
    )
