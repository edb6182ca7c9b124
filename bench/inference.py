"""Inference throughput: the logged MLflow pyfunc model on raw texts vs the raw torch module.

    python bench/inference.py [--samples 5000] [--model URI|best.pt] [--repeats 3] [--quick]

Without ``--model``, a small seed-model classifier (Embedding 10,000 x 128 -> LSTM 32, reviews
cut to 80 tokens; ``--overrides`` to change it) is trained for one epoch with the real CLI
(``python -m pipeline ... data.max_train_samples=1000``) into a temporary SQLite MLflow
store, which logs it as a pyfunc model. ``--model`` takes any model instead: an MLflow URI
(``runs:/<id>/model``, ``models:/<name>/<version>``; set ``MLFLOW_TRACKING_URI`` or
``--tracking-uri`` for its store) or a checkpoint (``best.pt``, logged here as a pyfunc
model into a temporary store first, as a run would).

On ``--samples`` real IMDb test reviews (the pipeline's seeded test split), after a
warm-up, interleaved, medians:

* ``pyfunc predict``: ``mlflow.pyfunc.load_model(uri).predict(list_of_texts)`` (raw strings
  in, a DataFrame of label and probabilities out: tokenizing, batching by length, the
  model, softmax, pandas).
* ``tokenize only``: the classifier's own ``encode`` (tokenizer + padding), no model.
* ``raw torch``: the classifier's ``nn.Module`` under ``torch.inference_mode`` on batches
  built beforehand (same tokens, same length-sorted batches of ``--batch-size``).

Also checked: the pyfunc labels equal the argmax of the raw module's logits.
"""

from __future__ import annotations

import time
from pathlib import Path

import common

TRAIN_ROWS = 1_000


def trained_model_uri(args, workdir: Path) -> tuple[str, str]:
    """Train a small classifier with the CLI; its pyfunc model URI and tracking store."""
    overrides = [
        *common.SEED_OVERRIDES,
        *args.overrides,
        f"data.max_train_samples={300 if args.quick else TRAIN_ROWS}",
        "data.max_eval_samples=100",
        "trainer.max_epochs=1",
    ]
    print(f"training a model: python -m pipeline {' '.join(overrides)}", flush=True)
    run = common.run_cli(overrides, workdir, "model", args.threads, metrics=())
    return f"runs:/{run.run_id}/model", f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def checkpoint_as_pyfunc(path: Path, workdir: Path) -> tuple[str, str]:
    """Log a checkpoint as the pipeline's pyfunc model (as a run does) in a temporary store."""
    import mlflow

    from pipeline.inference.pyfunc_model import log_classifier_model
    from pipeline.model.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    tokenizer = Path(payload.get("tokenizer_dir") or path.parent / "tokenizer")
    if not tokenizer.is_dir():
        tokenizer = path.parent / "tokenizer"
    store = f"sqlite:///{(workdir / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("bench-inference")
    with mlflow.start_run():
        info = log_classifier_model(mlflow, path, tokenizer, payload["labels"])
    return info.model_uri, store


def main() -> None:
    p = common.parser(__doc__, samples=5_000, quick_samples=500)
    p.add_argument("--model", default=None, help="MLflow model URI or checkpoint (best.pt)")
    p.add_argument("--tracking-uri", default=None, help="the MLflow store of --model")
    p.add_argument("--batch-size", type=int, default=256, help="as predict's default")
    p.add_argument("--overrides", nargs="*", default=[], help="extra CLI overrides for training")
    args = common.setup(p.parse_args())

    import mlflow
    import numpy as np
    import torch

    from pipeline.data.batching import batch_order, iterate_batches
    from pipeline.data.data_config import preset
    from pipeline.data.labelled import load_data
    from pipeline.tracking.tracker import quiet_mlflow

    workdir = common.workdir(args, "inference")
    if args.model is None:
        uri, store = trained_model_uri(args, workdir)
    elif Path(args.model).is_file():
        uri, store = checkpoint_as_pyfunc(Path(args.model), workdir)
    else:
        uri, store = args.model, args.tracking_uri
    if store:
        mlflow.set_tracking_uri(store)
    with common.Timer() as load, quiet_mlflow():
        pyfunc = mlflow.pyfunc.load_model(uri)
    classifier = pyfunc.unwrap_python_model().classifier
    module = classifier.model.eval()
    print(f"model: {uri} loaded in {load.seconds:.1f}s; max length {classifier.max_length}")

    data = load_data(preset("imdb", max_eval_samples=args.samples), seed=common.SEED)
    texts = list(data.splits["test"]["text"])
    split = classifier.encode(texts)
    order = batch_order(split.lengths, args.batch_size, shuffle=False, bucket_size=1)
    batches = list(iterate_batches(split, order, torch.device("cpu")))

    def raw_logits() -> torch.Tensor:
        out = torch.empty(len(texts), len(classifier.labels))
        with torch.inference_mode():
            for index, batch in zip(order, batches, strict=True):
                out[index] = module(batch.ids, batch.mask)
        return out

    def timed(fn):
        def measure(repeat: int) -> float:
            start = time.perf_counter()
            fn()
            return len(texts) / (time.perf_counter() - start)

        return measure

    variants = {
        "pyfunc predict": timed(lambda: pyfunc.predict(texts)),
        "tokenize only": timed(lambda: classifier.encode(texts)),
        "raw torch": timed(raw_logits),
    }
    predicted = pyfunc.predict(texts)  # warm-up, and the agreement check
    logits = raw_logits()
    raw_labels = np.array(classifier.labels)[logits.argmax(1).numpy()]
    agree = float(np.mean(predicted["label"].to_numpy() == raw_labels))
    runs = common.interleaved(variants, args.repeats)
    median = common.medians(runs)
    print(
        f"\n{len(texts):,} IMDb test reviews, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    raw = median["raw torch"]
    common.table(
        ["variant", "texts/s", "vs raw torch"],
        [[name, value, f"{value / raw:.2f}x"] for name, value in median.items()],
    )
    print(f"pyfunc labels = argmax of raw logits for {agree:.1%} of texts")
    common.write_json(
        "inference",
        args,
        {
            "model_uri": uri,
            "load_seconds": load.seconds,
            "texts": len(texts),
            "max_length": classifier.max_length,
            "texts_per_s": median,
            "runs": runs,
            "pyfunc_vs_raw": median["pyfunc predict"] / raw,
            "labels_agree": agree,
        },
    )


if __name__ == "__main__":
    main()
