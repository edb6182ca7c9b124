"""Disk and permission faults: one ``error:`` line naming the path and the cause, exit 2.

The faults are faked (``os.access``, ``os.statvfs``, a write that raises ``ENOSPC``) so that
these tests hold on any machine and as root, who writes into read-only folders; the
catalogue (``tests/test_bad_inputs.py``) has the real ``chmod`` cases for other users.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from pipeline.errors import StorageError
from pipeline.runtime import files
from tests.run.test_runner import composed, toy_reviews


def writes_into_read_only_folders() -> bool:
    """Whether this process writes into a ``chmod 555`` folder anyway (root, with its
    capabilities): then a real read-only folder cannot be made with chmod."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            Path(folder, "probe").touch()
            return True
        except PermissionError:
            return False
        finally:
            os.chmod(folder, 0o755)


def deny_access(monkeypatch, *denied: Path) -> None:
    """``os.access`` says no for ``denied`` (as a chmod 555 would for a user)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: Path(p) not in denied and real(p, m))


def fake_statvfs(monkeypatch, *, readonly: bool = False, free_blocks: int | None = None):
    real = os.statvfs

    def statvfs(path):
        stats = real(path)
        flag = stats.f_flag | (os.ST_RDONLY if readonly else 0)
        free = stats.f_bavail if free_blocks is None else free_blocks
        return SimpleNamespace(
            f_flag=flag, f_bavail=free, f_bfree=free, f_frsize=stats.f_frsize, f_blocks=1000
        )

    monkeypatch.setattr(os, "statvfs", statvfs)


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("denied", "permission denied"),
        ("readonly", "the file system is read-only"),
        ("full", "no space left on the device"),
    ],
)
def test_check_writable_names_the_folder_and_the_cause(tmp_path, monkeypatch, fault, cause):
    target = tmp_path / "runs" / "today"  # not there yet: judged by tmp_path, not created
    if fault == "denied":
        deny_access(monkeypatch, tmp_path)
    else:
        fake_statvfs(monkeypatch, readonly=fault == "readonly", free_blocks=0)
    with pytest.raises(StorageError) as caught:
        files.check_writable(target, "trainer.checkpoint_dir")
    assert str(caught.value).startswith(f"Cannot write {target} (trainer.checkpoint_dir): {cause}")
    assert "point trainer.checkpoint_dir at another folder" in str(caught.value)
    assert not (tmp_path / "runs").exists()


def test_a_writable_folder_passes_and_nothing_is_created(tmp_path):
    files.check_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_on_a_full_disk_names_its_path_and_leaves_no_temp_file(tmp_path, monkeypatch):
    """``torch.save`` on a full disk raises a RuntimeError whose context is the OSError."""
    import torch

    from pipeline.model import checkpoint

    def full_disk(payload, handle):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    monkeypatch.setattr(torch, "save", full_disk)
    target = tmp_path / "best.pt"
    with pytest.raises(StorageError) as caught:
        checkpoint.save_atomic({"x": 1}, target)
    assert str(caught.value).startswith(f"Cannot write {target}: no space left on the device")
    assert list(tmp_path.iterdir()) == []  # no .best.pt.*.tmp


def test_a_storage_fault_in_a_run_is_one_error_line_and_exit_2(monkeypatch, capsys):
    """Any write of the run (config.yaml, tokenizer, plots, journal) that meets a full disk:
    ``error: Cannot write <file>: no space left ...``, exit 2, no traceback."""
    from pipeline.run import app, runner

    def full_disk(cfg):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/config.yaml")

    monkeypatch.setattr(runner, "run", full_disk)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as ended:
        app.hydra_app(composed())  # Hydra's main runs the function on a config it is given
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot write /runs/x/config.yaml: no space left on the device")
    assert "Traceback" not in err


def test_a_read_only_output_folder_is_refused_before_hydra_writes(tmp_path, monkeypatch, capsys):
    """The Hydra callback checks ``hydra.run.dir`` (and a sweep's ``hydra.sweep.dir``)."""
    from pipeline.run.preflight import OutputFolderCheck

    fake_statvfs(monkeypatch, readonly=True)
    config = OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "outputs" / "run")}}})
    with pytest.raises(SystemExit) as ended:
        OutputFolderCheck().on_run_start(config)
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert f"error: Cannot write {tmp_path / 'outputs' / 'run'} (hydra.run.dir)" in err
    assert "the file system is read-only" in err and not (tmp_path / "outputs").exists()


def test_an_unwritable_checkpoint_dir_fails_before_the_data_is_loaded(tmp_path, monkeypatch):
    """Before: found when the first checkpoint was written, after a full epoch."""
    from pipeline.run.runner import run
    from pipeline.tasks.classification import ClassificationTask

    monkeypatch.chdir(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_access(monkeypatch, locked)
    monkeypatch.setattr(ClassificationTask, "prepare", lambda *a: pytest.fail("data loaded"))
    train = toy_reviews(tmp_path / "train.csv", rows=40)
    cfg = composed("data=files", f"data.train={train}", f"trainer.checkpoint_dir={locked}/ckpt")
    with pytest.raises(StorageError) as caught:
        run(cfg)
    assert f"Cannot write {locked}/ckpt (trainer.checkpoint_dir): permission denied" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (OSError(errno.EROFS, "Read-only file system"), "the file system is read-only"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
    ],
)
def test_a_faulty_datasets_cache_is_named_not_the_data_file(tmp_path, monkeypatch, error, cause):
    """Before: "Cannot read train.csv as csv ... Check that the file is CSV"."""
    import datasets

    from pipeline.data.labelled import load_data

    cache = tmp_path / "cache"
    if error.errno == errno.EROFS:
        error.filename = str(cache / "csv_default.lock")  # datasets' lock file in the cache

    def load_dataset(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    train = toy_reviews(tmp_path / "train.csv", rows=40)
    config = composed("data=files", f"data.train={train}", f"data.cache_dir={cache}").data
    with pytest.raises(StorageError) as caught:
        load_data(config, seed=0)
    text = str(caught.value)
    assert text.startswith(f"Cannot write the datasets cache {cache} (data.cache_dir or ")
    assert cause in text and "Check that the file" not in text


def test_other_errors_are_left_alone(tmp_path):
    assert files.storage_fault(OSError(errno.ENOENT, "No such file")) is None
    assert files.storage_fault(ValueError("bad")) is None
    elsewhere = OSError(errno.EACCES, "Permission denied", "/data/train.csv")
    assert files.folder_fault(elsewhere, tmp_path, "data.cache_dir") is None
