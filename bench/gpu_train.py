"""Training throughput on a CUDA GPU: the pipeline with AMP on and off vs a plain cuDNN loop.

    python bench/gpu_train.py [--samples 20000] [--batch-size 32] [--repeats 3] [--quick]

The benchmark of ``train_throughput.py`` (the seed model on the same real IMDb rows), on
the GPU:

* ``pipeline amp=off`` / ``pipeline amp=on``: the real CLI with ``trainer.device=cuda``
  and ``trainer.amp=false|true`` (bf16 where the GPU has it, else fp16 with a grad
  scaler), in a fresh process; epoch 2's ``train/samples_per_s`` read from its MLflow run.
* ``cuDNN fp32`` / ``cuDNN autocast``: a hand-written loop (nn.Embedding -> nn.LSTM ->
  nn.Linear), its data moved to the GPU once and indexed there, without and with
  ``torch.autocast`` in the dtype the pipeline picks; synchronised before the clock stops.
  It trains with the pipeline's own optimizer and clipping for the same config (fused Adam
  1e-3, max-norm 1.0: ``common.pipeline_optimizer``), so the ratio measures the loop alone.

Without a CUDA GPU it prints "no CUDA GPU here: skipped", writes
``bench/results/gpu_train.json`` with ``skipped: true`` and exits 0. ``--device cpu`` runs
every code path on the CPU (AMP is then off everywhere): a smoke test, not a GPU number.
"""

from __future__ import annotations

import common

EPOCHS = 2


def main() -> None:
    p = common.parser(__doc__, samples=20_000, quick_samples=1_000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (smoke test)")
    args = common.setup(p.parse_args())

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: skipped")
        common.write_json("gpu_train", args, {"skipped": True, "reason": "no CUDA GPU"})
        return

    from pipeline.runtime.device import autocast_dtype

    device = torch.device(args.device)
    overrides = [
        *common.SEED_OVERRIDES,
        f"trainer.batch_size={args.batch_size}",
        f"trainer.device={args.device}",
        f"data.max_train_samples={args.samples}",
        f"data.max_eval_samples={100 if args.quick else 500}",
        f"trainer.max_epochs={EPOCHS}",
    ]
    data = common.imdb_token_ids(overrides)
    train = data.splits["train"]
    width = int(data.cfg.data.max_length)
    ids = common.left_padded(train, width, data.tokenizer.pad_id).to(device)
    labels = train.labels.to(device)
    amp = autocast_dtype(device, True)

    hand = {}
    for name, dtype in (("cuDNN fp32", None), ("cuDNN autocast", amp)):
        torch.manual_seed(0)
        model = common.seed_model(data.tokenizer.vocab_size, data.num_classes).to(device)
        optimizer, clip = common.pipeline_optimizer(model, data.cfg, device)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        common.hand_written_epoch(
            model, optimizer, ids[:640], labels[:640], args.batch_size, 0, dtype, scaler, clip
        )  # warm-up (cuDNN plans, allocator)

        def measure(
            repeat: int, model=model, optimizer=optimizer, dtype=dtype, scaler=scaler, clip=clip
        ):
            return common.hand_written_epoch(
                model, optimizer, ids, labels, args.batch_size, repeat + 1, dtype, scaler, clip
            )

        hand[name] = measure

    workdir = common.workdir(args, "gpu")
    cli_runs: dict[str, list] = {}

    def pipeline(name: str, extra: str):
        cli_runs[name] = []

        def measure(repeat: int) -> float:
            run = common.run_cli([*overrides, extra], workdir, f"{name}-{repeat}", args.threads)
            cli_runs[name].append({"run_id": run.run_id, "seconds": run.seconds, **run.history})
            return run.history["train/samples_per_s"][-1]

        return measure

    variants = {
        "pipeline amp=off": pipeline("pipeline amp=off", "trainer.amp=false"),
        "pipeline amp=on": pipeline("pipeline amp=on", "trainer.amp=true"),
        **hand,
    }
    runs = common.interleaved(variants, args.repeats)
    median = common.medians(runs)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke test)"
    print(
        f"\nseed model on {name}, batch {args.batch_size}, max length {width}, "
        f"{len(train):,} IMDb reviews, AMP dtype {amp}, median of {args.repeats}"
    )
    base = median["cuDNN fp32"]
    common.table(
        ["variant", "samples/s", "vs cuDNN fp32"],
        [[k, v, f"{v / base:.2f}x"] for k, v in median.items()],
    )
    common.write_json(
        "gpu_train",
        args,
        {
            "skipped": False,
            "device": name,
            "amp_dtype": str(amp),
            "rows": len(train),
            "samples_per_s": median,
            "runs": runs,
            "vs_cudnn_fp32": {k: v / base for k, v in median.items()},
            "pipeline_cli_runs": cli_runs,
        },
    )


if __name__ == "__main__":
    main()
