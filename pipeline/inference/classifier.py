"""A trained classifier on raw text, rebuilt from its checkpoint: predict labels.

:class:`TrainedClassifier` tokenizes and truncates exactly like training did and returns
probabilities per class; ``pipeline.inference.serving.load_classifier`` finds one anywhere
it was saved, and the MLflow pyfunc model wraps one.

Predictions are a DataFrame: ``label`` (the most likely class) and one probability column
per class, ``p_<label>``, in the label order of training (see :data:`PROBABILITY_PREFIX`).
MLflow is imported only for MLflow references; a checkpoint needs torch alone.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline import tasks
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.contracts import Tokenizer
    from pipeline.model.assembly import SequenceClassifier

#: A probability column is ``p_<label>``: the prefix keeps a label named "label" apart.
PROBABILITY_PREFIX = "p_"
LABEL_COLUMN = "label"
TEXT_COLUMN = "text"
_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class TrainedClassifier:
    """A classifier in eval mode with the tokenizer and labels it was trained with."""

    model: SequenceClassifier
    tokenizer: Tokenizer
    labels: list[str]
    config: dict[str, Any]  # the resolved training config
    run_id: str | None = None  # the MLflow run the model came from, if known
    max_length: int | None = None  # training's data.max_length: texts are cut like in training
    truncation_side: str = "right"  # and on the same side (data.truncation_side)

    def truncate(self, items: Sequence[Any]) -> Sequence[Any]:
        """A text's ids (or tokens) cut as training cut them."""
        from pipeline.data.tokenize import truncate

        return truncate(items, self.max_length, self.truncation_side)

    @property
    def probability_columns(self) -> list[str]:
        """``p_<label>`` for each label, in label-id order."""
        return [f"{PROBABILITY_PREFIX}{label}" for label in self.labels]

    def encode(self, texts: Sequence[str]) -> Any:
        """Token ids of ``texts`` as an ``EncodedSplit`` (truncated as in training)."""
        from pipeline.data.batching import EncodedSplit

        rows = [self.truncate(row) for row in self.tokenizer.encode_batch(list(texts))]
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter(
            itertools.chain.from_iterable(rows), dtype=np.int64, count=int(offsets[-1])
        )
        return EncodedSplit.from_flat(values, offsets, self.tokenizer.pad_id)

    @torch.inference_mode()
    def predict_proba(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        progress: bool = False,
    ) -> torch.Tensor:
        """Class probabilities [N, C] (on the CPU), rows in the order of ``texts``.

        Rows are batched by length (little padding); an empty text is a row with no token.
        """
        from pipeline.data.batching import batch_order, iterate_batches

        texts = as_texts(texts)
        device = _device(device)
        probabilities = torch.empty(len(texts), len(self.labels), dtype=torch.float32)
        if not texts:
            return probabilities
        split = self.encode(texts)
        order = batch_order(split.lengths, max(int(batch_size), 1), shuffle=False, bucket_size=1)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="Predicting", unit="texts", file=sys.stderr)
        self.model.eval().to(device)
        for index, batch in zip(order, iterate_batches(split, order, device), strict=True):
            logits = self.model(batch.ids, batch.mask)
            probabilities[index] = torch.softmax(logits.float(), dim=-1).cpu()
            if bar is not None:
                bar.update(len(index))
        if bar is not None:
            bar.close()
        return probabilities

    def predict(
        self,
        texts: Sequence[str],
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        progress: bool = False,
    ) -> pd.DataFrame:
        """A DataFrame: ``label`` (most likely class) and ``p_<label>`` per class."""
        import pandas as pd

        probabilities = self.predict_proba(texts, batch_size, device, progress).numpy()
        frame = pd.DataFrame(probabilities.astype(np.float64), columns=self.probability_columns)
        best = probabilities.argmax(axis=1) if len(probabilities) else np.array([], dtype=int)
        frame.insert(0, LABEL_COLUMN, [self.labels[i] for i in best])
        return frame


def as_texts(data: Any, name: str = TEXT_COLUMN) -> list[str]:
    """Strings from what callers send: a str, a list/tuple/array of str, a pandas Series,
    a DataFrame with a ``text`` column (or a single column), or ``{"text": [...]}``
    (``name``: the column, ``prompt`` for a language model).

    Every text must be a string (an empty one is fine): a missing value (None, NaN), a
    number or a boolean is refused, naming its row, rather than turned into the text
    "None" or "3" and classified as if someone had written it."""
    if isinstance(data, str):
        return [data]
    column = None
    if isinstance(data, dict):
        if name not in data:
            raise PipelineError(
                f"The input is a mapping with keys {sorted(map(str, data))}; put the texts "
                f"under '{name}'."
            )
        data, column = data[name], name
        if isinstance(data, str):
            return [data]
    columns = getattr(data, "columns", None)
    if columns is not None:  # a DataFrame
        names = [str(c) for c in columns]
        if name in names:
            column = name
        elif len(names) == 1:
            column = names[0]
        else:
            raise PipelineError(
                f"The input table has columns {names} but no '{name}' column; name the "
                f"column of texts '{name}'."
            )
        data = data[data.columns[names.index(column)]]
    if hasattr(data, "tolist"):  # Series, numpy array
        data = data.tolist()
    texts = list(data)
    for row, value in enumerate(texts):
        if not isinstance(value, str):
            raise PipelineError(_not_a_text(row, value, column))
    return texts


def _not_a_text(row: int, value: Any, column: str | None) -> str:
    """Says which row holds a value that is not a string, and what to send instead."""
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    what = "is missing (null)" if missing else f"is {value!r}, a {type(value).__name__}"
    where = f"row {row}" + (f" of column '{column}'" if column else "")
    return (
        f'The input\'s {where} {what}, not a string. Every text must be a string: send "" '
        "for an empty text, quote numbers, and drop the rows without a text."
    )


def _device(device: torch.device | str) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from pipeline.runtime.device import resolve_device

    return resolve_device(str(device))


# -- from a checkpoint ---------------------------------------------------------------------


def classifier_from_checkpoint(
    path: str | Path, tokenizer_dir: str | Path | None = None
) -> TrainedClassifier:
    """Rebuild a classifier from a checkpoint (loaded with ``weights_only``).

    The tokenizer comes from ``tokenizer_dir``, else the folder recorded in the checkpoint,
    else ``tokenizer/`` beside it (where runs write it when the checkpoint is in their
    output directory).
    """
    from omegaconf import OmegaConf

    from pipeline.data.tokenize import load_tokenizer
    from pipeline.model.assembly import build_model, with_embedding_dim
    from pipeline.model.checkpoint import Checkpoint, load_weights
    from pipeline.plugins import load_plugins

    path = Path(path)
    saved = Checkpoint.load(path, what="classifier")
    config = saved.config
    kind = tasks.kind(saved.kind)
    if kind.predicts != "labels":  # say what it is instead, and what uses it
        raise PipelineError(
            f"{path} is a {kind.noun} checkpoint; it predicts {kind.predicts}, not labels. Use "
            f"it with: python -m pipeline {kind.usage.format(path=path)}"
        )
    if not config or saved.labels is None:
        raise PipelineError(
            f"{path} is not a classifier checkpoint of this pipeline (it lacks the model, "
            "config or labels). Use the best.pt or last.pt that a training run wrote."
        )
    folder = tokenizer_folder(path, saved.tokenizer_dir, tokenizer_dir)
    tokenizer = load_tokenizer(folder)
    labels = [str(label) for label in saved.labels]
    load_plugins()  # building a model reads the registries, never Hydra's ConfigStore
    config = with_embedding_dim(config, saved.model)  # embedding.dim=0: the vectors' size
    model = build_model(
        OmegaConf.create(config), tokenizer.vocab_size, tokenizer.pad_id, len(labels)
    )
    load_weights(model, saved.model, path, folder)
    data = config.get("data") or {}
    max_length = data.get("max_length")
    return TrainedClassifier(
        model=model.eval(),
        tokenizer=tokenizer,
        labels=labels,
        config=config,
        run_id=saved.mlflow_run_id,
        max_length=int(max_length) if max_length else None,
        truncation_side=str(data.get("truncation_side") or "right"),
    )


def tokenizer_folder(path: Path, recorded: str | None, tokenizer_dir: str | Path | None) -> Path:
    """A checkpoint's tokenizer folder: ``tokenizer_dir``, else the recorded one, else
    ``tokenizer/`` beside the checkpoint; none of them is one error saying what to do."""
    candidates = [tokenizer_dir, recorded, path.parent / "tokenizer"]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_dir():
            return Path(candidate)
    raise PipelineError(
        f"The tokenizer of {path} is missing: "
        + (f"it was recorded at {recorded}, which no longer exists, and " if recorded else "")
        + "there is no tokenizer/ folder beside the checkpoint. Copy the run's tokenizer/ "
        "folder next to it, or load the model from MLflow (model=<run id>), which keeps both."
    )
