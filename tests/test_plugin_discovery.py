"""Entry-point discovery with real (throwaway) distributions on the path: a plugin that
raises on import is reported and skipped; two providers of one name are an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def make_distribution(site: Path, dist: str, module: str, source: str) -> None:
    """A minimal installed distribution: a module plus a dist-info with its entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[pipeline.plugins]\n{module} = {module}\n")


def pipeline_cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_a_plugin_that_raises_on_import_is_reported_and_the_rest_works(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(
        site, "broken-plugin", "broken_plugin", "raise ImportError('needs libfoo >= 2')\n"
    )
    done = pipeline_cli(site, "plugins", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = done.stdout + done.stderr
    assert "broken_plugin" in report and "broken-plugin" in report
    assert "needs libfoo >= 2" in report
    assert "plugins.encoders.rnn.LSTMEncoder" in done.stdout  # the others still load
    assert "Traceback" not in report


def test_two_providers_of_one_name_is_an_error_naming_both(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    source = (
        "from pipeline.registry import encoders\n"
        "from plugins.encoders.rnn import LSTMEncoder, RNNConfig\n"
        "@encoders.register('lstm', config=RNNConfig)\n"
        "class MyLSTM(LSTMEncoder):\n"
        "    pass\n"
    )
    make_distribution(site, "zz-my-lstm", "zz_my_lstm", source)
    done = pipeline_cli(site, "encoder=lstm", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "'seqpipe'" in done.stderr and "'zz-my-lstm'" in done.stderr
    assert "lstm" in done.stderr
