"""What regularisation costs in training speed: the default classifier with its dropouts vs
the same model with every dropout off, and element-wise vs locked dropout.

    python bench/regularisation.py [--samples 10000] [--repeats 3] [--threads N] [--quick]

Each variant is the real command, ``python -m pipeline task=sentiment
data.max_train_samples=N trainer.max_epochs=2 <variant>``, in a fresh process (IMDb, the
defaults otherwise); its epoch-2 ``train/samples_per_s`` (the loop's own timer: validation,
checkpoints and tracking excluded) is read back from its MLflow run. Variants:

* ``defaults``: the composed defaults, whatever dropouts they hold.
* ``no dropout``: every dropout at 0 (embedding, encoder, head).
* ``element``: element-wise embedding dropout 0.25 and head dropout 0.3 (the first
  version's defaults: one Bernoulli draw per value).
* ``locked + weight``: locked embedding dropout 0.4, weight dropout 0.3 on the recurrent
  matrices and locked dropout 0.3 on the encoder's output (AWD-LSTM's kinds: one mask per
  sequence and feature, one per weight matrix).

Interleaved (A, B, C, D, A, ...); medians. Target (issue 15): the regularised model trains at
>= 0.9x the samples/s of the same model without dropout.
"""

from __future__ import annotations

import common

TARGET = 0.9
NO_DROPOUT = [
    "embedding.dropout=0",
    "embedding.token_dropout=0",
    "encoder.dropout=0",
    "encoder.weight_dropout=0",
    "encoder.locked_dropout=0",
    "head.dropout=0",
]
VARIANTS = {
    "defaults": [],
    "no dropout": NO_DROPOUT,
    "element": [*NO_DROPOUT, "embedding.dropout=0.25", "head.dropout=0.3"],
    "locked + weight": [
        *NO_DROPOUT,
        "embedding.dropout_kind=locked",
        "embedding.dropout=0.4",
        "encoder.weight_dropout=0.3",
        "encoder.locked_dropout=0.3",
    ],
}


def main() -> None:
    p = common.parser(__doc__, samples=10_000, quick_samples=1_000)
    args = common.setup(p.parse_args())
    base = [
        "task=sentiment",
        f"data.max_train_samples={args.samples}",
        "data.max_eval_samples=500",
        "trainer.max_epochs=2",
        "trainer.patience=0",
        "trainer.progress=none",
        "tracking.log_model=false",
    ]
    workdir = common.workdir(args, "regularisation")
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def measure_of(name: str, extra: list[str]):
        def measure(repeat: int) -> float:
            run = common.run_cli([*base, *extra], workdir, f"{name}-{repeat}", args.threads)
            seconds[name].append(run.seconds)
            return run.history["train/samples_per_s"][-1]

        return measure

    variants = {name: measure_of(name, extra) for name, extra in VARIANTS.items()}
    print(f"timing {list(variants)} x {args.repeats} (interleaved)")
    median = common.medians(common.interleaved(variants, args.repeats))
    plain = median["no dropout"]
    print(f"\nIMDb, {args.samples:,} reviews, epoch 2, median of {args.repeats}")
    rows = [[name, value, f"{value / plain:.2f}x"] for name, value in median.items()]
    common.table(["variant", "samples/s", "/ no dropout"], rows)
    met = common.target_line("defaults / no dropout", median["defaults"] / plain, TARGET)
    common.write_json(
        "regularisation",
        args,
        {"variants": VARIANTS, "median": median, "runs_seconds": seconds, "met": met},
    )


if __name__ == "__main__":
    main()
