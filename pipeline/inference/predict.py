"""Label raw texts with a trained classifier (or tag their words with a tagger).

    python -m pipeline predict model=<checkpoint | MLflow run id | runs:/... | models:/...> \
        text="a gripping film" [text="..."] | input=<texts.txt | texts.csv | texts.jsonl> \
        [text_column=text] [output=<predictions.csv | predictions.jsonl>] \
        [batch_size=256] [device=auto] [tracking_uri=...]

``input=``: a .txt file holds one text per line (every line, blank ones too, so row i is
line i); a .csv or .jsonl file holds the texts in ``text_column``. Without ``output=`` a
table (label, confidence, text) goes to stdout; with it, every row gets the text, the
label, its confidence and ``p_<label>`` for each class, in input order. A tagging model's
checkpoint is tagged instead (CoNLL-U in and out too): ``pipeline.inference.tag_predict``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.arguments import parse_key_values
from pipeline.errors import ConfigError, DataError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

INPUT_FORMATS = (".txt", ".csv", ".jsonl", ".conllu")  # .conllu: tagging models
OUTPUT_FORMATS = (".csv", ".jsonl", ".conllu")
INPUT_KINDS = ("text", "conllu")  # format=: how input= is read (default: by its extension)
PROGRESS_FROM = 1000  # texts: a progress bar (stderr) from this many on
TABLE_TEXT_WIDTH = 70


@dataclass
class PredictArgs:
    model: str = ""
    text: list[str] = field(default_factory=list)  # text=... may be repeated
    input: str = ""
    text_column: str = "text"
    output: str = ""
    batch_size: int = 256
    device: str = "auto"
    tracking_uri: str = ""
    format: str = ""  # text | conllu; default: from input='s extension


def parse_args(argv: list[str]) -> PredictArgs:
    """``key=value`` arguments; ``text=`` may repeat. Checked before any model is loaded."""
    args, _ = parse_key_values("predict", argv, PredictArgs, usage=_USAGE)
    if not args.model:
        raise ConfigError(f"predict needs model=... . {_USAGE}")
    if not args.text and not args.input:
        raise ConfigError(f"predict needs texts: text=... (repeatable) or input=<file>. {_USAGE}")
    if args.text and args.input:
        raise ConfigError(
            "predict takes either text=... or input=<file>, not both: put every text in the file, "
            "or pass them all as text=..."
        )
    if args.batch_size < 1:
        raise ConfigError(f"predict batch_size={args.batch_size}: it must be >= 1.")
    if args.format and (args.format not in INPUT_KINDS or not args.input):
        raise ConfigError(
            f"predict format={args.format}: it says how input=<file> is read: text (one "
            "sentence per line) or conllu (CoNLL-U, for tagging models); text=... is raw text."
        )
    if args.input:
        if not args.format:
            _check_suffix(args.input, INPUT_FORMATS, "input")
        if not Path(args.input).is_file():
            raise DataError(f"predict input={args.input}: no such file.")
    if args.output:
        _check_suffix(args.output, OUTPUT_FORMATS, "output")
        check_writable(Path(args.output))
    return args


def check_writable(path: Path) -> None:
    """Refuse an output that cannot be written, before the model loads and predicts: a
    temporary file is made (and removed) in the nearest existing folder on its way."""
    import tempfile

    if path.is_dir():
        raise DataError(f"predict output={path} is a folder; name a file in it (.csv or .jsonl).")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    problem = None
    if not folder.is_dir():
        problem = f"{folder} is a file, not a folder"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = "the file exists and is read-only"
    else:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            problem = f"{folder} cannot be written ({exc.strerror or exc})"
    if problem:
        raise DataError(
            f"predict output={path} cannot be written: {problem}. Choose another path, or "
            "fix the folder's permissions."
        )


_USAGE = (
    "Usage: python -m pipeline predict model=<checkpoint | run id | runs:/<id>/<model name> | "
    'models:/<name>/<version>> text="..." (or input=<file.txt|.csv|.jsonl>, and .conllu for '
    "a tagging model) [output=<file.csv|.jsonl>, .conllu or .jsonl for a tagging model]."
)


def _check_suffix(path: str, allowed: tuple[str, ...], key: str) -> None:
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise ConfigError(
            f"predict {key}={path}: unknown file type '{suffix or '(none)'}'. Use one of: "
            f"{', '.join(allowed)}."
        )


# -- reading ---------------------------------------------------------------------------


def read_texts(path: str | Path, text_column: str = "text", lines: bool = False) -> list[str]:
    """The texts of a .txt (one per line), .csv or .jsonl (``text_column``) file; ``lines``
    (``format=text``): any other file is read as a .txt."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt" or (lines and suffix not in (".csv", ".jsonl")):
            texts = path.read_text(encoding="utf-8").splitlines()
        elif suffix == ".csv":
            texts = _read_csv(path, text_column)
        elif suffix == ".jsonl":
            texts = _read_jsonl(path, text_column)
        else:
            _check_suffix(str(path), INPUT_FORMATS, "input")
            texts = []
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    if not texts:
        raise DataError(f"{path} holds no texts.")
    return texts


def _read_csv(path: Path, column: str) -> list[str]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return []
    except (pd.errors.ParserError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise DataError(f"{path} cannot be read as CSV ({reason}).") from None
    if column not in frame.columns:
        raise DataError(
            f"{path} has no column '{column}'; set text_column=<the column of texts>. "
            f"{did_you_mean(column, map(str, frame.columns))}"
        )
    return frame[column].tolist()


def _read_jsonl(path: Path, column: str) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {number} is not JSON ({exc.msg}).") from None
            if not isinstance(record, dict) or column not in record:
                keys = sorted(record) if isinstance(record, dict) else []
                raise DataError(
                    f"{path} line {number} has no '{column}' field; set text_column=<the field "
                    f"holding the text>. {did_you_mean(column, keys)}"
                )
            value = record[column]
            texts.append("" if value is None else str(value))
    return texts


# -- writing ---------------------------------------------------------------------------


def with_texts(texts: list[str], predictions: pd.DataFrame) -> pd.DataFrame:
    """text, label, confidence (the label's probability), then ``p_<label>`` per class."""
    frame = predictions.copy()
    probabilities = [c for c in frame.columns if c != "label"]
    frame.insert(0, "text", texts)
    frame.insert(2, "confidence", frame[probabilities].max(axis=1) if probabilities else [])
    return frame


def write_predictions(frame: pd.DataFrame, path: str | Path) -> None:
    """``frame`` as .csv or .jsonl; a write that fails (disk full...) is one error line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            frame.to_csv(path, index=False)
        else:
            with path.open("w", encoding="utf-8") as handle:
                for record in frame.to_dict(orient="records"):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise DataError(
            f"predict output={path} cannot be written ({exc.strerror or exc}). Free space or "
            "fix the permissions, or choose another path, and run predict again."
        ) from None


def table(frame: pd.DataFrame, width: int = TABLE_TEXT_WIDTH) -> str:
    """label, confidence and the text (one line, cut to ``width`` characters)."""
    label_width = max([len("label"), *(len(str(label)) for label in frame["label"])])
    lines = [f"{'label':<{label_width}}  confidence  text"]
    for text, label, confidence in zip(
        frame["text"], frame["label"], frame["confidence"], strict=True
    ):
        shown = " ".join(str(text).split())
        if len(shown) > width:
            shown = shown[: width - 3] + "..."
        lines.append(f"{label:<{label_width}}  {confidence:>10.4f}  {shown}")
    return "\n".join(lines)


def _device(name: str) -> Any:
    """auto (CUDA when present) | cpu | cuda | cuda:N, checked with predict's own wording."""
    import torch

    if not (name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ConfigError(
            f"predict device={name!r} is not a device. Use auto, cpu, cuda or cuda:N."
        )
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"predict device={name} but no CUDA GPU is available here. Use device=auto or cpu."
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from pipeline.inference import tag_predict

    conllu = tag_predict.is_conllu(args)
    sentences = tag_predict.read_conllu(args.input) if conllu else None
    texts: list[str] = []
    if not conllu:
        lines = args.format == "text"
        texts = read_texts(args.input, args.text_column, lines) if args.input else args.text
    device = _device(args.device)
    from pipeline.inference.serving import load_predictor
    from pipeline.inference.tagger import TrainedTagger

    model = load_predictor(args.model, args.tracking_uri)
    if isinstance(model, TrainedTagger):
        sentences = sentences or tag_predict.from_texts(texts, args.input or "text=")
        tag_predict.predict_tags(model, args, sentences, device)
        return
    if conllu or Path(args.output).suffix.lower() == ".conllu":
        raise ConfigError(
            f"predict: {args.model} is a classifier (it predicts labels); CoNLL-U "
            f"({'input' if conllu else 'output'}) is for tagging models. Give texts as "
            "text=... or input=<file.txt|.csv|.jsonl>, and output=<file.csv|.jsonl>."
        )
    predictions = model.predict(
        texts,
        batch_size=args.batch_size,
        device=device,
        progress=len(texts) >= PROGRESS_FROM,
    )
    frame = with_texts(texts, predictions)
    if args.output:
        write_predictions(frame, args.output)
        print(f"wrote {len(frame):,} predictions to {args.output}", flush=True)
    else:
        sys.stdout.write(table(frame) + "\n")
