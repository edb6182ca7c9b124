"""A catalogue of bad inputs, each run through the real command line.

Every case runs ``python -m pipeline ...`` in a subprocess, in its own working directory,
offline, and checks what a user sees: exit code 2, one short ``error: ...``
paragraph on stderr that names what is wrong and how to fix it (a key phrase of it is
asserted), no traceback, and nothing left behind that looks like a good result (no
``best.pt``/``last.pt``, no temporary checkpoint, no partial ``datasets`` cache file).

The README's "Errors" table lists the same cases (``test_the_readme_lists_every_case``
keeps the two in sync). Cases run two at a time (the first test waits for them all);
those that need a trained classifier share one tiny run, which is also the catalogue's
"works" case: a training file holding one 10 MB text is cut to ``data.max_length`` tokens
and trains, without hanging or a memory blow-up.
"""

from __future__ import annotations

import csv
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.plugin_packages import CHECKED, LACKS_A_FIELD, NOT_DERIVED, make_distribution
from tests.runtime.test_files import writes_into_read_only_folders
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: Settings that keep a case quick if it gets as far as training.
TINY = (
    "data=sst2",
    "data.related_texts=[]",  # no word2vec on IMDb first (issue 15)
    "data.max_train_samples=200",
    "data.max_eval_samples=50",
    "trainer.max_epochs=1",
    "encoder.hidden_size=8",
    "embedding.dim=8",
)
#: The shared classifier, in the docs' words (its run directory in the tests).
MODEL = "<run>/best.pt"
TIMEOUT = 240  # seconds per command: a case that hangs fails instead of blocking CI


# ------------------------------------------------------------------------------------------
# Files the cases read, written into each case's own working directory


def write(**files: str | bytes) -> Callable[[Path, Path | None], None]:
    """Write ``files`` (name -> content; ``_`` in a name stands for ``.``)."""

    def setup(cwd: Path, model: Path | None) -> None:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (cwd / name.replace("_", ".")).write_bytes(data)

    return setup


REVIEWS = "text,label\ngood film,pos\nbad film,neg\nfine acting,pos\ndull plot,neg\n"


def truncated_checkpoint(cwd: Path, model: Path | None) -> None:
    assert model is not None
    (cwd / "cut.pt").write_bytes(model.read_bytes()[:3000])


def foreign_torch_file(cwd: Path, model: Path | None) -> None:
    torch.save({"weights": torch.zeros(3)}, cwd / "weights.pt")


def pickled_checkpoint(cwd: Path, model: Path | None) -> None:
    """Weights and a pickled function: unpickling it would call whatever it names."""
    torch.save({"model": {"w": torch.zeros(3)}, "hook": print}, cwd / "payload.pt")


def edited_checkpoint(name: str, edit: Callable[[dict], None]):
    def setup(cwd: Path, model: Path | None) -> None:
        assert model is not None
        payload = torch.load(model, weights_only=True)
        edit(payload)
        torch.save(payload, cwd / name)

    return setup


def as_language_model(payload: dict) -> None:
    """What a task=lm run's checkpoint holds: its task, and no labels."""
    payload["config"]["task"].update(name="lm", type="language_model")
    del payload["labels"]


def wider_encoder(payload: dict) -> None:
    payload["config"]["encoder"]["hidden_size"] = 16


def broken_plugin(cwd: Path, model: Path | None) -> None:
    (cwd / "site").mkdir()
    source = "raise ImportError('needs libfoo >= 2')\n"
    make_distribution(cwd / "site", "broken-plugin", "broken_plugin", source)


def duplicate_plugin(cwd: Path, model: Path | None) -> None:
    (cwd / "site").mkdir()
    source = (
        "from pipeline.registry import poolers\n"
        "from plugins.poolers.simple import MeanPooler, PoolerConfig\n"
        "@poolers.register('mean', config=PoolerConfig)\n"
        "class MyMean(MeanPooler):\n"
        "    pass\n"
    )
    make_distribution(cwd / "site", "zz-my-mean", "zz_my_mean", source)


def qrnn_plugin(source: str, **options: Any) -> Callable[[Path, Path | None], None]:
    """A setup that installs the throwaway plugin ``seqpipe-qrnn`` with ``source``."""

    def setup(cwd: Path, model: Path | None) -> None:
        (cwd / "site").mkdir()
        make_distribution(cwd / "site", "seqpipe-qrnn", "qrnn_plugin", source, **options)

    return setup


def locked(cwd: Path, model: Path | None) -> None:
    """A folder nobody may write into (``chmod 555``)."""
    (cwd / "locked").mkdir()
    (cwd / "locked").chmod(0o555)


def locked_store(cwd: Path, model: Path | None) -> None:
    """An ``mlflow.db`` in a folder nobody may write into (SQLite writes a journal beside it)."""
    (cwd / "locked").mkdir()
    sqlite3.connect(cwd / "locked" / "mlflow.db").close()
    (cwd / "locked").chmod(0o555)


#: Root writes into a chmod 555 folder: the read-only cases need another user (CI's).
_ROOT_WRITES = "root writes into read-only folders" if writes_into_read_only_folders() else None

# ------------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # {cwd}, {model}, {port} are filled in; TINY is added to runs
    expect: tuple[str, ...]  # phrases the error message must hold
    setup: Callable[[Path, Path | None], None] | None = None
    needs_model: bool = False
    tiny: bool = True  # add TINY (training runs); sub-commands take their own arguments
    plugins: bool = False  # put ./site (throwaway distributions) on PYTHONPATH
    skip: str | None = None
    xfail: str | None = None  # the reason, where the fix is outside this change

    @property
    def command(self) -> str:
        """The command as the README shows it (without TINY)."""
        shown = []
        for arg in self.args:
            arg = arg.replace("{cwd}/", "").replace("{cwd}", "$PWD").replace("{model}", MODEL)
            arg = arg.replace("{port}", "5000")
            shown.append(f"'{arg}'" if any(c in arg for c in "[]{}<>") else arg)
        return " ".join(["python -m pipeline", *shown])


_cuda = torch.cuda.is_available()

CASES = [
    # -- config --------------------------------------------------------------------------
    Case(
        "unknown-option",
        ("encoder=lsmt", "tracking=none"),
        ("Unknown option encoder=lsmt", "Did you mean 'lstm'"),
    ),
    Case(
        "unknown-data-preset",
        ("data=imbd", "tracking=none"),
        ("Unknown option data=imbd", "Did you mean 'imdb'"),
    ),
    Case(
        "unknown-key",
        ("encoder.hiden_size=3", "tracking=none"),
        ("Unknown key encoder.hiden_size", "Did you mean 'hidden_size'"),
    ),
    Case(
        "wrong-type",
        ("trainer.batch_size=abc", "tracking=none"),
        ("trainer.batch_size=abc", "Integer", "e.g. trainer.batch_size=64"),
    ),
    Case(
        "zero-hidden-size",
        ("encoder.hidden_size=0", "tracking=none"),
        ("encoder.hidden_size=0 is too small", ">= 1"),
        tiny=False,
    ),
    Case(
        "negative-batch-size",
        ("trainer.batch_size=-1", "tracking=none"),
        ("trainer.batch_size=-1 is too small", ">= 1"),
    ),
    Case(
        "zero-embedding-dim",
        ("embedding.dim=0", "tracking=none"),
        ("embedding.dim=0 is too small", ">= 1"),
        tiny=False,
    ),
    Case(
        "dropout-above-one",
        ("encoder.dropout=1.5", "tracking=none"),
        ("encoder.dropout=1.5 is too large", "< 1"),
    ),
    Case(
        "dropout-of-one",
        ("encoder.dropout=1.0", "tracking=none"),
        ("encoder.dropout=1.0 is too large", "< 1"),
    ),
    Case(
        "zero-lr",
        ("optimizer.lr=0", "tracking=none"),
        ("optimizer.lr=0.0 is too small",),
    ),
    Case(
        "unknown-device",
        ("trainer.device=tpu", "tracking=none"),
        ("trainer.device='tpu' is not a device", "auto, cpu, cuda or cuda:N"),
    ),
    Case(
        "cuda-without-gpu",
        ("trainer.device=cuda", "tracking=none"),
        ("no CUDA GPU is available", "trainer.device=cpu"),
        skip="this machine has CUDA" if _cuda else None,
    ),
    Case(
        "lm-with-non-causal-encoder",
        ("task=lm", "encoder=transformer", "tracking=none"),
        ("encoder=transformer is not causal", "encoder=lstm"),
        tiny=False,
    ),
    Case(
        "lm-on-labelled-data",
        ("task=lm", "data=sst2", "tracking=none"),
        ("data=sst2 is a labelled data set", "task=lm needs a text corpus"),
        tiny=False,
    ),
    Case(
        "classifier-on-corpus",
        ("task=sentiment", "data=ptb", "tracking=none"),
        ("data=ptb is a text corpus", "use task=lm"),
        tiny=False,
    ),
    Case(
        "register-without-tracking",
        ("tracking.register_as=x", "tracking=none"),
        ("tracking.register_as=x", "Use tracking=mlflow"),
    ),
    Case(
        "schedule-with-epoch-decay",
        ("optimizer.schedule=cosine", "optimizer.decay=0.5", "tracking=none"),
        ("optimizer.schedule=cosine sets the lr every step", "optimizer.decay=0.5"),
    ),
    Case(
        "target-at-root",
        ("+_target_=os.system", "tracking=none"),
        ("_target_ is not used", "nothing is instantiated from the config's root"),
    ),
    Case(
        "target-under-trainer",
        ("+trainer._target_=os.system", "tracking=none"),
        ("trainer._target_ is not used", "Remove +trainer._target_"),
    ),
    Case(
        "unknown-monitor",
        ("trainer.monitor=val/nonsense", "tracking=none"),
        ("trainer.monitor='val/nonsense' is not a metric", "val/accuracy"),
    ),
    # -- data ----------------------------------------------------------------------------
    Case(
        "missing-file",
        ("data=files", "data.train=/nope.csv", "tracking=none"),
        ("data.train=/nope.csv", "does not exist"),
    ),
    Case(
        "missing-data-dir",
        ("data=sst2", "data.dir=/nowhere", "tracking=none"),
        ("/nowhere (from data.dir) does not exist", "Point data.dir at"),
    ),
    Case(
        "empty-file",
        ("data=files", "data.train=empty.csv", "tracking=none"),
        ("empty.csv is empty (0 bytes)", "header row"),
        setup=write(empty_csv=""),
    ),
    Case(
        "file-without-rows",
        ("data=files", "data.train=reviews.csv", "data.validation=header.csv", "tracking=none"),
        ("header.csv has no rows", "fill the file"),
        setup=write(reviews_csv=REVIEWS, header_csv="text,label\n"),
    ),
    Case(
        "missing-text-column",
        ("data=files", "data.train=reviews.csv", "data.text_column=review", "tracking=none"),
        ("text column 'review' is not in", "its columns are text, label", "data.text_column"),
        setup=write(reviews_csv=REVIEWS),
    ),
    Case(
        "label-not-in-label-names",
        (
            "data=files",
            "data.train=reviews.csv",
            "data.label_names=[negative,positive]",
            "tracking=none",
        ),
        ("has the label 'neg'", "not among data.label_names", "Did you mean 'negative'"),
        setup=write(reviews_csv=REVIEWS),
    ),
    Case(
        "label-out-of-range",
        ("data=files", "data.train=stars.csv", "data.label_names=[0,1]", "tracking=none"),
        ("has the label '7'", "not among data.label_names"),
        setup=write(stars_csv="text,label\ngood,1\nbad,0\nsuperb,7\nawful,0\n"),
    ),
    Case(
        "single-class",
        ("data=files", "data.train=positive.csv", "tracking=none"),
        ("1 distinct label(s) (pos)", "needs at least 2", "data.label_column"),
        setup=write(positive_csv="text,label\ngood,pos\ngreat,pos\nfine,pos\nsuperb,pos\n"),
    ),
    Case(
        "not-utf8",
        ("data=files", "data.train=latin1.csv", "tracking=none"),
        ("latin1.csv is not UTF-8 text", "byte 0xe9", "Save the file as UTF-8"),
        setup=write(latin1_csv="text,label\ncaf\xe9 cr\xe8me,pos\nbad,neg\n".encode("latin-1")),
    ),
    Case(
        "only-empty-texts",
        ("data=files", "data.train=blank.csv", "tracking=none"),
        ("Every text in", "is empty", "data.text_column"),
        setup=write(blank_csv='text,label\n"",pos\n"",neg\n"",pos\n"",neg\n"",pos\n'),
    ),
    Case(
        "filter-keeps-no-rows",
        ("data=mr", "data.local_splits.test.keep={fold:[99]}", "tracking=none"),
        ("No row of", "mr.tsv is kept by its filter (fold in [99])", "local_splits.test.keep"),
    ),
    Case(
        "zero-samples",
        ("data=sst2", "data.max_train_samples=0", "tracking=none"),
        ("data.max_train_samples=0 is too small", ">= 1"),
        tiny=False,
    ),
    # -- tokenizer -----------------------------------------------------------------------
    Case(
        "vocab-below-specials",
        ("tokenizer.vocab_size=1", "tracking=none"),
        ("tokenizer.vocab_size=1 is too small", ">= 2"),
    ),
    Case(
        "vocab-below-specials-with-eos",
        ("tokenizer.eos=true", "tokenizer.vocab_size=2", "tracking=none"),
        ("tokenizer.vocab_size=2 is too small", ">= 3", "<eos>"),
    ),
    # -- tracking ------------------------------------------------------------------------
    Case(
        "unreachable-server",
        ("tracking.uri=http://127.0.0.1:{port}",),
        ("The MLflow server at http://127.0.0.1:", "does not answer", "tracking=none"),
    ),
    Case(
        "unwritable-store",
        ("tracking.uri=sqlite:////proc/nope/mlflow.db",),
        ("Cannot open the MLflow tracking store", "tracking=none"),
    ),
    Case(
        "store-is-a-folder",
        ("tracking.uri=sqlite:///{cwd}",),
        ("it is a folder, not a database file", "tracking=none"),
    ),
    Case(
        "read-only-store",
        ("tracking.uri=sqlite:///{cwd}/locked/mlflow.db",),
        ("Cannot write the MLflow tracking store", "locked/mlflow.db: permission denied"),
        setup=locked_store,
        skip=_ROOT_WRITES,
    ),
    # -- disk and permissions ------------------------------------------------------------
    Case(
        "read-only-output-folder",
        ("hydra.run.dir={cwd}/locked/run", "tracking=none"),
        ("locked/run (hydra.run.dir): permission denied", "point hydra.run.dir at"),
        setup=locked,
        skip=_ROOT_WRITES,
    ),
    Case(
        "read-only-checkpoint-dir",
        ("trainer.checkpoint_dir={cwd}/locked/ckpt", "tracking=none"),
        ("locked/ckpt (trainer.checkpoint_dir): permission denied",),
        setup=locked,
        skip=_ROOT_WRITES,
    ),
    Case(
        "read-only-datasets-cache",
        ("data.cache_dir={cwd}/locked", "tracking=none"),
        ("Cannot write the datasets cache", "locked (data.cache_dir", "permission denied"),
        setup=locked,
        skip=_ROOT_WRITES,
    ),
    # -- checkpoints ---------------------------------------------------------------------
    Case(
        "predict-missing-checkpoint",
        ("predict", "model=missing.pt", "text=x"),
        ("Checkpoint not found: missing.pt",),
        tiny=False,
    ),
    Case(
        "predict-truncated-checkpoint",
        ("predict", "model=cut.pt", "text=x"),
        ("cut.pt cannot be read: it is truncated or corrupted",),
        setup=truncated_checkpoint,
        needs_model=True,
        tiny=False,
    ),
    Case(
        "predict-not-a-checkpoint",
        ("predict", "model=notes.pt", "text=x"),
        ("notes.pt is not a PyTorch checkpoint", "best.pt"),
        setup=write(notes_pt="just some notes\n"),
        tiny=False,
    ),
    Case(
        "predict-foreign-torch-file",
        ("predict", "model=weights.pt", "text=x"),
        ("weights.pt is not a classifier checkpoint of this pipeline",),
        setup=foreign_torch_file,
        tiny=False,
    ),
    Case(
        "predict-pickled-checkpoint",
        ("predict", "model=payload.pt", "text=x"),
        ("payload.pt holds pickled Python objects or code", "refused for safety"),
        setup=pickled_checkpoint,
        tiny=False,
    ),
    Case(
        "predict-unwritable-output",
        ("predict", "model={model}", "text=x", "output=/proc/nope/predictions.csv"),
        ("output=/proc/nope/predictions.csv cannot be written",),
        needs_model=True,
        tiny=False,
    ),
    Case(
        "predict-language-model",
        ("predict", "model=lm.pt", "text=x"),
        ("lm.pt is a language-model checkpoint", "python -m pipeline generate model=lm.pt"),
        setup=edited_checkpoint("lm.pt", as_language_model),
        needs_model=True,
        tiny=False,
    ),
    Case(
        "predict-config-mismatch",
        ("predict", "model=edited.pt", "text=x"),
        ("weights in edited.pt do not fit", "size mismatch"),
        setup=edited_checkpoint("edited.pt", wider_encoder),
        needs_model=True,
        tiny=False,
    ),
    Case(
        "generate-from-classifier",
        ("generate", "model={model}", "prompt=x"),
        ("is a classification checkpoint", "cannot generate text", "python -m pipeline predict"),
        needs_model=True,
        tiny=False,
    ),
    # -- plugins -------------------------------------------------------------------------
    Case(
        "plugin-raises-on-import",
        ("encoder=indrnn", "tracking=none"),
        (
            "Unknown option encoder=indrnn",
            "plugin 'broken_plugin' from 'broken-plugin' failed to load",
        ),
        setup=broken_plugin,
        plugins=True,
    ),
    Case(
        "duplicate-plugin-name",
        ("pooler=mean", "tracking=none"),
        ("pooler 'mean' is registered more than once", "'seqpipe'", "'zz-my-mean'"),
        setup=duplicate_plugin,
        plugins=True,
        tiny=False,
    ),
    Case(
        "plugin-config-not-derived",
        ("encoder=qrnn", "tracking=none"),
        ("'qrnn' from 'seqpipe-qrnn'", "Derive it from pipeline.registry.ComponentConfig"),
        setup=qrnn_plugin(NOT_DERIVED),
        plugins=True,
        tiny=False,
    ),
    Case(
        "plugin-config-lacks-field",
        ("encoder=qrnn", "tracking=none"),
        ("encoder=qrnn", "'seqpipe-qrnn'", "'bidirectional'", "add it to the config dataclass"),
        setup=qrnn_plugin(LACKS_A_FIELD),
        plugins=True,
    ),
    Case(
        "plugin-without-entry-point",
        ("encoder=qrnn", "tracking=none"),
        ("Unknown option encoder=qrnn", "'seqpipe-qrnn'", "declares no [project.entry-points"),
        setup=qrnn_plugin("", entry_point=False, requires=["seqpipe>=0.1"]),
        plugins=True,
        tiny=False,
    ),
    Case(
        "plugin-target-typo",
        ("encoder=qrnn", "tracking=none"),
        ("'qrnn' from 'seqpipe-qrnn'", "qrnn_plugin:QRNNN", "does not exist", "declare(...)"),
        setup=qrnn_plugin(CHECKED),
        plugins=True,
    ),
]


# ------------------------------------------------------------------------------------------
# Running


@dataclass
class Outcome:
    cwd: Path
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float = 0.0


def environment(data_dir: Path, hf_cache: Path, site: Path | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "HYDRA_FULL_ERROR" and not k.startswith("MLFLOW_")
    }
    env.update(
        PIPELINE_DATA_DIR=str(data_dir),
        HF_DATASETS_CACHE=str(hf_cache),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


#: Runs the command given in its arguments, then writes the command's own peak memory (KiB)
#: to $PEAK_FILE and exits with its exit code. A child's ru_maxrss includes the memory of the
#: process it was forked from (Linux records the old address space's peak at exec), so a
#: command started straight from this test process would report pytest's peak: a launcher
#: this small keeps the measurement the command's own.
PEAK_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
with open(os.environ["PEAK_FILE"], "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """``python -m pipeline *args``, with its exit code, output and peak memory (Linux)."""
    out, err, peak_file = cwd / ".stdout", cwd / ".stderr", cwd / ".peak"
    command = [sys.executable, "-m", "pipeline", *args]
    measured = hasattr(os, "wait4")
    if measured:
        command = [sys.executable, "-c", PEAK_LAUNCHER, *command]
        env = {**env, "PEAK_FILE": str(peak_file)}
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a timeout kills the launcher and the command
        )
        timer = threading.Timer(TIMEOUT, os.killpg, (process.pid, 9))
        timer.start()
        try:
            process.wait()
        finally:
            timer.cancel()
    peak = 0.0
    if measured and peak_file.is_file():
        peak = int(peak_file.read_text()) / 1024  # KiB on Linux
        peak_file.unlink()
    outcome = Outcome(cwd, process.returncode, out.read_text(), err.read_text(), peak)
    out.unlink()
    err.unlink()
    return outcome


def write_big_reviews(path: Path) -> None:
    """60 short reviews, the first of them 10 MB long."""
    rng = random.Random(0)
    words = ["good", "bad", "film", "plot", "actor", "boring", "great", "awful", "fine", "scene"]
    rows = [(" ".join(rng.choices(words, k=8)), rng.choice(["pos", "neg"])) for _ in range(60)]
    rows[0] = (" ".join(rng.choices(words, k=2_000_000)), "pos")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def train_shared_model(root: Path, env: dict[str, str]) -> Outcome:
    """The tiny classifier the checkpoint cases read (also the 10 MB text "works" case)."""
    root.mkdir()
    write_big_reviews(root / "reviews.csv")
    args = ["data=files", "data.train=reviews.csv", "data.max_length=50", "tracking=none"]
    args += ["trainer.max_epochs=1", "encoder.hidden_size=8", "embedding.dim=8"]
    args += ["trainer.batch_size=16", "hydra.run.dir=run"]
    return run_cli(args, root, env)


def selected(request: pytest.FixtureRequest) -> tuple[list[Case], bool]:
    """The catalogue cases this session runs (all, or those picked with -k or by id), and
    whether it needs the shared model."""
    ids, works = [], False
    for item in request.session.items:
        if getattr(item, "module", None) is not sys.modules[__name__]:
            continue
        callspec = getattr(item, "callspec", None)
        if callspec and "case" in callspec.params:
            ids.append(callspec.params["case"].id)
        works |= item.name == "test_a_10mb_text_is_truncated_and_trains"
    cases = [c for c in CASES if c.id in ids and not c.skip]
    return cases, works or any(c.needs_model for c in cases)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, data_dir, hf_cache) -> dict[str, Future]:
    """Run the shared training and the selected cases, two at a time (one per core)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    env = environment(data_dir, hf_cache)
    cases, train = selected(request)
    futures: dict[str, Future] = {}
    with ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2))) as pool:
        if train:
            futures["shared model"] = pool.submit(train_shared_model, root / "model", env)

        def model() -> Path:
            outcome = futures["shared model"].result()
            assert outcome.returncode == 0, outcome.stderr[-3000:]
            return outcome.cwd / "run" / "best.pt"

        def run_case(case: Case) -> Outcome:
            cwd = root / case.id
            cwd.mkdir()
            checkpoint = model() if case.needs_model else None
            if case.setup is not None:
                case.setup(cwd, checkpoint)
            args = [
                a.replace("{cwd}", str(cwd))
                .replace("{model}", str(checkpoint))
                .replace("{port}", str(free_port()))  # nothing listens there
                for a in case.args
            ]
            if case.tiny:
                given = {a.split("=")[0] for a in args}
                args += [a for a in TINY if a.split("=")[0] not in given]
            site = cwd / "site" if case.plugins else None
            return run_cli(args, cwd, environment(data_dir, hf_cache, site))

        # Cases that need the model go last, so that the training overlaps the others.
        for case in sorted(cases, key=lambda c: c.needs_model):
            futures[case.id] = pool.submit(run_case, case)
        for future in futures.values():  # all done: the datasets cache is quiet from here on
            future.exception()
    return futures


def outcome_of(runs: dict, key: str) -> Outcome:
    return runs[key].result()  # re-raises what went wrong while running it


def partial_files(folder: Path) -> list[Path]:
    """Checkpoints, temporary checkpoints and unfinished ``datasets`` cache entries."""
    found = []
    for path in folder.rglob("*"):
        name = path.name
        if name.endswith(".lock"):
            continue
        if (
            name in ("best.pt", "last.pt")
            or (name.startswith(".") and name.endswith(".tmp"))  # save_atomic's temp file
            or name.endswith(".incomplete")
            or ".incomplete" in name
            or name.startswith("tmp")  # datasets' writers rename tmpXXXX files when done
        ):
            found.append(path)
    return found


def marks(case: Case) -> list:
    result = []
    if case.skip:
        result.append(pytest.mark.skip(reason=case.skip))
    if case.xfail:
        result.append(pytest.mark.xfail(strict=True, reason=case.xfail))
    return result


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=marks(c)) for c in CASES])
def test_bad_input(case: Case, runs, hf_cache):
    done = outcome_of(runs, case.id)
    report = f"{case.command}\nexit {done.returncode}\nstderr:\n{done.stderr}\n"
    report += f"stdout:\n{done.stdout[-3000:]}"
    assert done.returncode == 2, report  # PipelineError.exit_code, as the README says
    assert "Traceback" not in done.stderr + done.stdout, report
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, report  # one message ...
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), report  # no noise
    assert len(lines) <= 3 and len(errors[0]) <= 600, report  # ... and a short one
    for phrase in case.expect:
        assert phrase in errors[0], (phrase, report)
    left = partial_files(done.cwd)
    assert not left, f"left behind: {left}\n{report}"
    if "tracking=none" in case.args:
        assert not (done.cwd / "mlflow.db").exists()  # nothing was tracked
    assert not partial_files(hf_cache), partial_files(hf_cache)


def test_a_10mb_text_is_truncated_and_trains(runs):
    """The "works" case: one 10 MB training text is cut to data.max_length tokens."""
    done = outcome_of(runs, "shared model")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "data: " in done.stdout and "train 48" in done.stdout, done.stdout
    assert (done.cwd / "run" / "best.pt").is_file()
    checkpoint = torch.load(done.cwd / "run" / "best.pt", weights_only=True)
    assert checkpoint["config"]["data"]["max_length"] == 50
    # The whole run, torch included: ~500 MB for a tiny run, ~570 MB with the 10 MB text.
    # (Fitting and encoding that text whole, not in pieces, took ~650 MB more.) Measured
    # through PEAK_LAUNCHER: started straight from pytest it would report pytest's own peak.
    if done.peak_rss_mb:
        assert done.peak_rss_mb < 800, f"peak memory {done.peak_rss_mb:.0f} MB"


def test_cases_have_unique_ids_and_phrases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert all(c.expect for c in CASES)


def readme_table() -> dict[str, str]:
    """id -> example command, from the rows of the README's "## Errors" table."""
    section = README.read_text().split("\n## Errors\n", 1)
    assert len(section) == 2, "README.md has no '## Errors' section"
    body = section[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_the_readme_lists_every_case():
    rows = readme_table()
    assert sorted(rows) == sorted(c.id for c in CASES), (
        "the README's Errors table and CASES differ: "
        f"missing from README {sorted(set(c.id for c in CASES) - set(rows))}, "
        f"not in CASES {sorted(set(rows) - set(c.id for c in CASES))}"
    )
    for case in CASES:
        assert rows[case.id] == case.command, (case.id, rows[case.id], case.command)
