"""Variable-length training on real IMDb reviews: pad every batch to 400 vs the pipeline's batching.

    python bench/variable_length.py [--samples 4000] [--repeats 3] [--threads N] [--quick]

The pipeline's default sentiment model (word tokenizer, reviews cut to 400 tokens, learned
embedding 128, ``lstm`` encoder 128, max pooler, classifier head, AdamW, batch 64, gradient
clipping 1.0, all from the composed config) with its ``lstm`` encoder one-directional and
bidirectional, trained one epoch on the first ``--samples`` rows of the pipeline's IMDb
train split, two ways that differ only in the batches:

* ``pad-to-max``: shuffled batches, every one padded to 400 steps (with its mask).
* ``pipeline``: ``pipeline.batching.batch_order`` (length buckets of ``trainer.bucket_size``
  batches) + ``iterate_batches`` (each batch cut to its longest row), as ``fit`` does.

Both use the pipeline's model, optimizer and ``optimizer_step``; timed after a warm-up,
interleaved, medians. ``tokens used`` is real tokens / padded tokens in an epoch's batches.

Exactness under masks: for the first batches of each kind, every row's output inside the
padded batch is compared with the output for that row alone (eval mode): the encoder's
outputs at the real steps and the logits. The max abs difference must be < 1e-5.

Target (the issue): pipeline >= 2x pad-to-max for both encoders.
"""

from __future__ import annotations

import time

import common

TARGET, TOLERANCE = 2.0, 1e-5


def pad_to_max(split, batch_size: int, width: int, generator):
    import torch

    from pipeline.batching import Batch, batch_order

    order = batch_order(split.lengths, batch_size, shuffle=True, bucket_size=1, generator=generator)
    ids = split.ids[:, :width]
    if ids.size(1) < width:
        ids = torch.nn.functional.pad(ids, (0, width - ids.size(1)))
    for index in order:
        lengths = split.lengths[index]
        mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        yield Batch(ids[index], mask, split.labels[index])


def bucketed(split, batch_size: int, bucket_size: int, generator):
    import torch

    from pipeline.batching import batch_order, iterate_batches

    order = batch_order(
        split.lengths, batch_size, shuffle=True, bucket_size=bucket_size, generator=generator
    )
    yield from iterate_batches(split, order, torch.device("cpu"))


def train_epoch(model, optimizer, batches, rows: int, grad_clip: float) -> float:
    import torch.nn.functional as F

    from pipeline.stages.train import optimizer_step

    model.train()
    start = time.perf_counter()
    for batch in batches:
        loss = F.cross_entropy(model(batch.ids, batch.mask), batch.labels)
        optimizer_step(loss, model, optimizer, None, grad_clip)
    return rows / (time.perf_counter() - start)


def max_error_alone(model, batches) -> tuple[float, float]:
    """Max |batch - alone| over (encoder outputs at real steps, logits)."""
    import torch

    model.eval()
    worst_seq = worst_logit = 0.0
    with torch.inference_mode():
        for batch in batches:
            logits = model(batch.ids, batch.mask)
            sequence = model.encoder(model.embedding(batch.ids), batch.mask).sequence
            for row in range(len(batch)):
                n = int(batch.mask[row].sum())
                ids, mask = batch.ids[row : row + 1, :n], batch.mask[row : row + 1, :n]
                alone = model.encoder(model.embedding(ids), mask).sequence[0]
                worst_seq = max(worst_seq, float((alone - sequence[row, :n]).abs().max()))
                worst_logit = max(
                    worst_logit, float((model(ids, mask)[0] - logits[row]).abs().max())
                )
    model.train()
    return worst_seq, worst_logit


def tokens_used(batches) -> float:
    """Real tokens / padded tokens over a list of batches."""
    real = sum(int(b.mask.sum()) for b in batches)
    return real / sum(b.mask.numel() for b in batches)


def main() -> None:
    p = common.parser(__doc__, samples=4_000, quick_samples=256)
    p.add_argument("--check-batches", type=int, default=None, help="batches per exactness check")
    args = common.setup(p.parse_args())
    check_batches = args.check_batches or (1 if args.quick else 2)

    import torch

    from pipeline.config import OptimizerConfig, TrainerConfig, typed
    from pipeline.stages.model import build_model
    from pipeline.stages.train import make_optimizer

    base = [f"data.max_train_samples={args.samples}"]
    data = common.imdb_token_ids(base)
    split = data.splits["train"]
    trainer = typed(TrainerConfig, data.cfg.trainer, "trainer")
    width = int(data.cfg.data.max_length)
    batch, bucket = trainer.batch_size, trainer.bucket_size
    lengths = split.lengths.float()
    print(
        f"lengths: median {lengths.median():.0f}, mean {lengths.mean():.0f}, "
        f"cut at {width}: {(split.lengths >= width).float().mean():.0%} of rows"
    )
    ways = {
        "pad-to-max": lambda g: pad_to_max(split, batch, width, g),
        "pipeline": lambda g: bucketed(split, batch, bucket, g),
    }
    used = {
        w: tokens_used(list(make(torch.Generator().manual_seed(0)))) for w, make in ways.items()
    }

    variants, errors = {}, {}
    for encoder in ("lstm", "bilstm"):
        cfg = common.compose([*base, f"encoder.bidirectional={encoder == 'bilstm'}"])
        torch.manual_seed(0)
        model = build_model(cfg, data.tokenizer.vocab_size, data.tokenizer.pad_id, data.num_classes)
        optimizer_cfg = typed(OptimizerConfig, cfg.optimizer, "optimizer")
        optimizer = make_optimizer(model.parameters(), optimizer_cfg, torch.device("cpu"))
        for way, make in ways.items():
            first = list(make(torch.Generator().manual_seed(0)))
            errors[f"{encoder} {way}"] = max_error_alone(model, first[:check_batches])
            train_epoch(model, optimizer, first[:2], 2 * batch, trainer.grad_clip)  # warm-up

            def measure(repeat: int, model=model, optimizer=optimizer, make=make) -> float:
                batches = make(torch.Generator().manual_seed(repeat + 1))
                return train_epoch(model, optimizer, batches, len(split), trainer.grad_clip)

            variants[f"{encoder} {way}"] = measure

    runs = common.interleaved(variants, args.repeats)
    median = common.medians(runs)
    print(
        f"\nIMDb, {len(split):,} reviews cut to {width} tokens, batch {batch}, bucket_size "
        f"{bucket}, hidden 128, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    rows, ratios = [], {}
    for name, value in median.items():
        encoder, way = name.split(" ")
        ratio = value / median[f"{encoder} pad-to-max"]
        if way == "pipeline":
            ratios[encoder] = ratio
        seq, logit = errors[name]
        exact = max(seq, logit) < TOLERANCE
        rows.append(
            [
                name,
                value,
                f"{ratio:.2f}x",
                f"{used[way]:.0%}",
                f"{seq:.1e}",
                f"{logit:.1e}",
                common.verdict(exact),
            ]
        )
    common.table(
        [
            "variant",
            "samples/s",
            "vs pad-to-max",
            "tokens used",
            "err outputs",
            "err logits",
            "exact",
        ],
        rows,
    )
    for encoder, ratio in ratios.items():
        common.target_line(f"{encoder}: pipeline / pad-to-max", ratio, TARGET)
    bound = used["pipeline"] / used["pad-to-max"]
    print(
        f"tokens used, pipeline / pad-to-max: {bound:.2f}x (the speed-up less padding alone gives)"
    )
    common.write_json(
        "variable_length",
        args,
        {
            "rows": len(split),
            "max_length": width,
            "batch_size": batch,
            "bucket_size": bucket,
            "length_median": float(lengths.median()),
            "length_mean": float(lengths.mean()),
            "fraction_cut": float((split.lengths >= width).float().mean()),
            "tokens_used": used,
            "speedup_bound_from_padding": bound,
            "samples_per_s": median,
            "runs": runs,
            "ratio_vs_pad_to_max": ratios,
            "target": TARGET,
            "met": {k: v >= TARGET for k, v in ratios.items()},
            "max_error_alone": {k: {"outputs": v[0], "logits": v[1]} for k, v in errors.items()},
            "exact": {k: max(v) < TOLERANCE for k, v in errors.items()},
        },
    )


if __name__ == "__main__":
    main()
