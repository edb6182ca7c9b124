"""The GPU check behind ``bench/gpu_check.sh``: every check of issue 14 in one run, each
within a time budget, then a one-screen summary.

    python bench/gpu_check.py [--dry-run] [--full-ptb] [--tracking none|mlflow] [--out DIR]

1. CUDA tests: ``pytest tests/runtime/test_cuda.py tests/runtime/test_cuda_features.py`` (a
   plain cuDNN LSTM step without pytest).
2. LSTM dtype under ``trainer.amp=true``: the recurrent layers' and linear layers' output
   dtypes during a training epoch (``gpu_probes.rnn_dtypes``).
3. Host syncs per training step, classifier and language model (``gpu_probes``).
4. The seed model (Embedding 10k x 128 -> LSTM 32, length 80, batch 32) on IMDb, 5. a BiLSTM
   2 x 256 at length 400, 6. ``experiment=ptb_medium``: the pipeline's CLI (its best
   epoch's items/s, from its epoch lines) against a plain cuDNN loop (``gpu_plain``); target
   >= 0.8x. PTB medium is stopped (SIGTERM: it saves last.pt) when its budget is spent;
   ``--full-ptb`` trains all 39 epochs and compares test perplexity with Zaremba's 82.7.

``--dry-run`` runs the same code on the CPU with tiny sizes (CI). The summary is printed and
written to ``$OUT/gpu_check.txt`` (and ``.json``) when ``OUT`` or ``--out`` is set, else to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import common

TARGET_RATIO, ZAREMBA_TEST_PPL = 0.8, 82.7
EPOCH_LINE = re.compile(r"^epoch (\d+): (.*?)\s+([\d,]+) (\w+)/s\s+([\d.]+)s")
SUMMARY_LINE = re.compile(r"^\s+((?:test|val)/\S+)\s+(-?[\d.]+|nan|inf)\s*$")


@dataclass
class Sizes:
    """What each check trains, and its seconds (the whole run stays under ``total``)."""

    total: float
    budgets: dict[str, float]
    imdb_rows: int
    eval_rows: int
    epochs: int
    plain_steps: int
    bilstm: tuple[int, int, int] = (256, 2, 400)  # hidden, layers, length
    ptb: tuple[str, ...] = ()  # overrides of experiment=ptb_medium
    vocab: int = 10_000


GPU = Sizes(
    total=510,
    budgets={"cuda": 120, "probes": 45, "imdb": 90, "bilstm": 90, "ptb": 130},
    imdb_rows=10_000,
    eval_rows=1_000,
    epochs=3,
    plain_steps=200,
)
DRY = Sizes(  # generous caps: a busy CI machine must not stop a tiny run halfway
    total=300,
    budgets={"cuda": 60, "probes": 60, "imdb": 60, "bilstm": 60, "ptb": 60},
    imdb_rows=128,
    eval_rows=64,
    epochs=2,
    plain_steps=3,
    bilstm=(8, 2, 40),
    vocab=300,
    ptb=(
        "data.max_train_lines=300",
        "trainer.max_epochs=2",
        "data.max_eval_lines=60",
        "embedding.dim=16",
        "encoder.hidden_size=16",
        "trainer.bptt=10",
        "task.sample_tokens=0",
    ),
)


@dataclass
class Row:
    check: str
    result: str
    verdict: str = ""  # ok | NO | n/a | error
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CliRun:
    """One ``python -m pipeline`` run: its epoch lines and final metrics."""

    epochs: list[dict[str, Any]]
    final: dict[str, float]
    stopped: bool
    seconds: float
    output: str

    def best_rate(self) -> tuple[float, str]:
        """Items/s of the fastest epoch after the first (warm), else of epoch 1."""
        warm = self.epochs[1:] or self.epochs
        if not warm:
            raise RuntimeError("no epoch finished:\n" + self.output[-1500:])
        best = max(warm, key=lambda e: e["rate"])
        return best["rate"], best["unit"]


class GpuCheck:
    """The checks, in order, each given what is left of the time."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args, self.sizes = args, DRY if args.dry_run else GPU
        self.device = torch.device("cpu" if args.dry_run else "cuda")
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.deadline = time.monotonic() + self.sizes.total
        self.rows: list[Row] = []

    def budget(self, name: str) -> float:
        """This check's seconds: its own, less if the later ones would lose over a third of
        theirs (the script as a whole stays within ``Sizes.total``)."""
        names, own = list(self.sizes.budgets), self.sizes.budgets[name]
        later = sum(self.sizes.budgets[n] for n in names[names.index(name) + 1 :])
        left = self.deadline - time.monotonic() - later * 2 / 3
        return max(own / 3, min(own, left))

    def run(self) -> list[Row]:
        for check in (self.cuda_tests, self.probes, self.imdb, self.bilstm, self.ptb):
            started = time.monotonic()
            try:
                self.rows += check()
            except Exception as exc:  # one broken check must not hide the others
                text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                self.rows.append(Row(check.__name__, text, "error"))
            print(f"[{check.__name__}: {time.monotonic() - started:.0f}s]", flush=True)
        return self.rows

    def env(self) -> dict[str, str]:
        paths = [str(common.REPO), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "PIPELINE_DATA_DIR": common.data_dir(),
            "HF_DATASETS_CACHE": str(self.work / "hf"),
            "PYTHONUNBUFFERED": "1",
        }

    def cli(self, name: str, overrides: list[str], budget: float | None) -> CliRun:
        """``python -m pipeline`` stopped with SIGTERM (it saves last.pt) after ``budget``."""
        if self.args.tracking == "mlflow":
            tracking = f"tracking.uri=sqlite:///{self.work / 'mlflow.db'}"
        else:
            tracking = "tracking=none"
        command = [sys.executable, "-m", "pipeline", *overrides, tracking]
        command += ["trainer.progress=none", f"hydra.run.dir={self.work / name}"]
        command.append(f"trainer.device={self.device.type}")
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=self.work,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stopped = False
        try:
            output, _ = process.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            stopped = True
            try:
                output, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
        if process.returncode != 0 and not stopped:
            raise RuntimeError(f"{name}: exit {process.returncode}:\n{output[-1500:]}")
        return parse_run(output, stopped, time.monotonic() - started)

    # -- the checks ----------------------------------------------------------------------

    def cuda_tests(self) -> list[Row]:
        """pytest on the CUDA test files; without pytest, one cuDNN LSTM step."""
        import importlib.util

        if importlib.util.find_spec("pytest") is None:
            return [Row("CUDA tests", *plain_cuda_check(self.device))]
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfE",
            "--tb=short",
            "-p",
            "no:cacheprovider",
        ]
        command += ["tests/runtime/test_cuda.py", "tests/runtime/test_cuda_features.py"]
        try:
            done = subprocess.run(
                command,
                cwd=common.REPO,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=self.budget("cuda"),
            )
        except subprocess.TimeoutExpired:
            return [Row("CUDA tests", f"not done in {self.budget('cuda'):.0f}s", "NO")]
        lines = (done.stdout + done.stderr).strip().splitlines()
        last = lines[-1].strip("= ") if lines else f"exit {done.returncode}"
        verdict = "ok" if done.returncode in (0, 5) else "NO"
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))][:3]
        folder = Path(self.args.out) if self.args.out else common.RESULTS
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "gpu_check_pytest.txt"  # every failure whole, for the next session
        log.write_text(done.stdout + done.stderr)
        return [Row("CUDA tests", "; ".join([last, *failed])[:200], verdict, {"log": str(log)})]

    def probes(self) -> list[Row]:
        import gpu_probes

        tmp = str(self.work / "probes")
        quiet = contextlib.redirect_stdout(io.StringIO())  # the probes' epoch lines
        try:
            with quiet:
                d = gpu_probes.rnn_dtypes(self.device, tmp)
            safe = d["rnn"] == "float32" or (d["rnn"] == "float16" and d["amp"] == "float16")
            text = f"autocast {d['amp']}; LSTM out {d['rnn']}; Linear out {d['linear']}"
            dtype = Row("LSTM dtype, amp=true", text, "ok" if safe else "NO", d)
        except Exception as exc:  # the AMP policy's pieces may not exist yet
            dtype = Row("LSTM dtype, amp=true", f"n/a ({type(exc).__name__}: {exc})"[:200], "n/a")
        with contextlib.redirect_stdout(io.StringIO()):
            counts = {
                kind: gpu_probes.syncs_per_step(self.device, tmp, lm=kind == "lm")
                for kind in ("classifier", "lm")
            }
        text = ", ".join(f"{k} {v:g}" for k, v in counts.items())
        ok = all(v <= 0 for v in counts.values())
        return [dtype, Row("host syncs per step", text, "ok" if ok else "NO", counts)]

    def _imdb_overrides(self, extra: list[str]) -> list[str]:
        keys = {o.split("=", 1)[0] for o in extra}
        seed = [o for o in common.SEED_OVERRIDES if o.split("=", 1)[0] not in keys]
        rows = [f"data.max_train_samples={self.sizes.imdb_rows}"]
        rows += [f"data.max_eval_samples={self.sizes.eval_rows}"]
        return [*seed, *rows, f"trainer.max_epochs={self.sizes.epochs}", *extra]

    def imdb(self) -> list[Row]:
        import gpu_plain

        overrides = self._imdb_overrides([])
        pipeline = self.cli("imdb", overrides, self.budget("imdb"))
        data = common.imdb_token_ids(overrides)
        plain = gpu_plain.seed_samples_per_s(data, data.cfg, self.device, self.sizes.epochs)
        return [ratio_row("IMDb seed LSTM 32, len 80", pipeline, plain)]

    def bilstm(self) -> list[Row]:
        import gpu_plain

        hidden, layers, length = self.sizes.bilstm
        overrides = self._imdb_overrides(
            [
                f"encoder.hidden_size={hidden}",
                f"encoder.num_layers={layers}",
                "encoder.bidirectional=true",
                "pooler=auto",
                f"data.max_length={length}",
            ]
        )
        pipeline = self.cli("bilstm", overrides, self.budget("bilstm"))
        data = common.imdb_token_ids(overrides)
        plain = gpu_plain.bilstm_samples_per_s(data, data.cfg, self.device, self.sizes.plain_steps)
        name = f"BiLSTM {layers}x{hidden}, len {length}"
        return [ratio_row(name, pipeline, plain)]

    def ptb(self) -> list[Row]:
        import gpu_plain

        overrides = ["experiment=ptb_medium", *self.sizes.ptb]
        budget = None if self.args.full_ptb else self.budget("ptb")
        pipeline = self.cli("ptb", overrides, budget)
        cfg = common.compose(overrides)
        steps = self.sizes.plain_steps
        plain = gpu_plain.lm_tokens_per_s(cfg, self.sizes.vocab, self.device, steps)
        size = f"{cfg.encoder.num_layers}x{cfg.encoder.hidden_size}"
        row = ratio_row(f"PTB medium {size}", pipeline, plain)
        done, planned = len(pipeline.epochs), int(cfg.trainer.max_epochs)
        last = pipeline.epochs[-1]["text"] if pipeline.epochs else ""
        found = re.search(r"val/perplexity ([\d.]+)", last)
        row.result += f"; {done}/{planned} epochs in {pipeline.seconds:.0f}s"
        if found:
            row.result += f", val ppl {found.group(1)}"
        if pipeline.epochs and done < planned:
            per_epoch = sum(e["seconds"] for e in pipeline.epochs) / done
            row.result += f"; all {planned} ~{per_epoch * planned / 60:.1f} min of training"
        test = pipeline.final.get("test/perplexity")
        if test is not None:
            row.result += f"; test ppl {test:.1f} (Zaremba {ZAREMBA_TEST_PPL})"
            row.verdict = row.verdict if test <= ZAREMBA_TEST_PPL else "NO"
        row.detail["epochs"] = pipeline.epochs
        return [row]


def parse_run(output: str, stopped: bool, seconds: float) -> CliRun:
    """The epoch lines (items/s, seconds, metrics text) and final metrics of a run."""
    epochs, final = [], {}
    for line in output.splitlines():
        if found := EPOCH_LINE.match(line):
            epoch, text, rate, unit, secs = found.groups()
            rate_value = float(rate.replace(",", ""))
            epochs.append(
                {"epoch": int(epoch), "text": text, "rate": rate_value, "unit": unit}
                | {"seconds": float(secs)}
            )
        elif found := SUMMARY_LINE.match(line):
            final[found.group(1)] = float(found.group(2))
    return CliRun(epochs, final, stopped, seconds, output)


def ratio_row(name: str, pipeline: CliRun, plain: float) -> Row:
    rate, unit = pipeline.best_rate()
    ratio = rate / plain
    text = f"pipeline {rate:,.0f} {unit}/s vs plain cuDNN {plain:,.0f} = {ratio:.2f}x"
    verdict = "ok" if ratio >= TARGET_RATIO else "NO"
    return Row(name, text, verdict, {"pipeline": rate, "plain": plain, "ratio": ratio})


def plain_cuda_check(device: Any) -> tuple[str, str]:
    """Without pytest: one cuDNN LSTM forward and backward on the device."""
    import torch

    if device.type != "cuda":
        return "no CUDA here (dry run): skipped", "ok"
    lstm = torch.nn.LSTM(16, 16, 2, batch_first=True, bidirectional=True).to(device)
    out, _ = lstm(torch.randn(4, 10, 16, device=device))
    out.sum().backward()
    torch.cuda.synchronize(device)
    return f"pytest absent; cuDNN LSTM step ran on {torch.cuda.get_device_name(device)}", "ok"


def summary(rows: list[Row], device: Any, seconds: float, dry: bool) -> str:
    """One screen: each check's verdict and result, and what the verdicts are held to."""
    import torch

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    lines = [f"== GPU check: {where}, torch {torch.__version__}{cuda}; {seconds:.0f}s =="]
    width = max(len(r.check) for r in rows)
    lines += [f"{r.check:<{width}}  {r.verdict or '-':<5}  {r.result}" for r in rows]
    lines.append(
        f"held to: pipeline >= {TARGET_RATIO}x the plain cuDNN loop; 0 host syncs per step; "
        "LSTM in float32 (or float16 with loss scaling) under amp"
        + ("; dry run: sizes are tiny, numbers mean nothing" if dry else "")
    )
    return "\n".join(lines)


def write(text: str, rows: list[Row], out: str | None) -> Path:
    folder = Path(out) if out else common.RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu_check.txt").write_text(text + "\n")
    payload = {"machine": common.machine(), "rows": [asdict(r) for r in rows]}
    (folder / "gpu_check.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return folder / "gpu_check.txt"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (CI)")
    p.add_argument("--full-ptb", action="store_true", help="train PTB medium's 39 epochs")
    p.add_argument("--tracking", choices=["none", "mlflow"], default="none")
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for the summary")
    args = p.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --dry-run to check the script on the CPU")
        return 2
    started = time.monotonic()
    check = GpuCheck(args)
    rows = check.run()
    text = summary(rows, check.device, time.monotonic() - started, args.dry_run)
    print("\n" + text)
    print(f"wrote {write(text, rows, args.out)}")
    return 1 if any(r.verdict == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
