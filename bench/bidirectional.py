"""Exact bidirectional RNNs under padding: which way is fastest on this machine?

    python bench/bidirectional.py [--repeats 5] [--threads N]

Variable-length batches (lognormal lengths, median ~170, max 400, bucketed as the
pipeline does), a bidirectional LSTM, forward + backward + Adam step. Three ways:

* ``padded``: nn.LSTM(bidirectional=True) over the padded batch. Fast, but NOT exact: the
  backward direction starts in the padding, so real tokens see pad steps.
* ``packed``: pack_padded_sequence. Exact; on CPU it loses oneDNN's fused kernel.
* ``reversed``: our ``lstm`` encoder: two one-direction LSTMs over padded batches, the
  backward one reading each row reversed within its length. Exact.

Prints a table (samples/s, median of interleaved repeats, and the error against an
unpadded reference) and writes ``bench/results/bidirectional.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.data.batching import batch_order
from plugins.encoders.rnn import LSTMEncoder, RNNConfig

EMBED, HIDDEN, BATCH, ROWS = 128, 128, 32, 1024


def lengths_like_imdb(n: int, generator: torch.Generator) -> torch.Tensor:
    normal = torch.randn(n, generator=generator)
    return (170 * torch.exp(0.6 * normal)).round().clamp(5, 400).long()


def mask_of(lengths: torch.Tensor) -> torch.Tensor:
    return torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)


class Padded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(EMBED, HIDDEN, batch_first=True, bidirectional=True)

    def forward(self, x, lengths):
        return self.rnn(x)[0]


class Packed(Padded):
    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.size(1))
        return out


class Reversed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = LSTMEncoder(
            RNNConfig(name="lstm", hidden_size=HIDDEN, bidirectional=True), EMBED
        )

    def forward(self, x, lengths):
        return self.encoder(x, mask_of(lengths)).sequence


def error_vs_reference(model: nn.Module, generator: torch.Generator) -> float:
    """Max abs difference between a padded batch's outputs and each row run alone."""
    lengths = torch.tensor([40, 25, 9, 3])
    x = torch.randn(4, 40, EMBED, generator=generator)
    model.eval()
    with torch.no_grad():
        batch = model(x, lengths)
        worst = 0.0
        for row, length in enumerate(lengths.tolist()):
            alone = model(x[row : row + 1, :length], lengths[row : row + 1])
            worst = max(worst, float((alone[0] - batch[row, :length]).abs().max()))
    model.train()
    return worst


def epoch(model: nn.Module, data: torch.Tensor, lengths: torch.Tensor, seed: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = batch_order(
        lengths, BATCH, shuffle=True, bucket_size=50, generator=torch.Generator().manual_seed(seed)
    )
    start = time.perf_counter()
    for index in order:
        batch_lengths = lengths[index]
        width = int(batch_lengths.max())
        out = model(data[index, :width], batch_lengths)
        loss = (out * mask_of(batch_lengths).unsqueeze(2)).sum() / len(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(lengths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    lengths = lengths_like_imdb(ROWS, generator)
    data = torch.randn(ROWS, int(lengths.max()), EMBED, generator=generator)
    torch.manual_seed(0)
    models = {"padded": Padded(), "packed": Packed(), "reversed": Reversed()}
    errors = {name: error_vs_reference(m, generator) for name, m in models.items()}
    for model in models.values():  # warm-up
        epoch(model, data[:128], lengths[:128], seed=0)
    speeds: dict[str, list[float]] = {name: [] for name in models}
    for repeat in range(args.repeats):  # interleaved, so drift hits every variant alike
        for name, model in models.items():
            speeds[name].append(epoch(model, data, lengths, seed=repeat))
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(
        f"bidirectional LSTM {EMBED}->{HIDDEN}x2, batch {BATCH}, {ROWS} rows, "
        f"median length {int(lengths.median())}, max {int(lengths.max())}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'variant':<10} {'samples/s':>10} {'vs padded':>10} {'max error':>10}  exact")
    for name in models:
        exact = errors[name] < 1e-5
        print(
            f"{name:<10} {median[name]:>10,.0f} {median[name] / median['padded']:>9.2f}x "
            f"{errors[name]:>10.1e}  {'yes' if exact else 'NO'}"
        )
    out = Path(__file__).parent / "results" / "bidirectional.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "samples_per_s": median,
                "runs": speeds,
                "max_error_vs_alone": errors,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
