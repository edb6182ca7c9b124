"""Throwaway installed distributions for plugin tests: a module plus a dist-info on a folder
put on ``PYTHONPATH``, and ``python -m pipeline`` run with that folder on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def make_distribution(
    site: Path,
    dist: str,
    module: str,
    source: str,
    *,
    entry_point: bool = True,
    requires: Sequence[str] = (),
    version: str = "0.3",
) -> None:
    """A minimal installed distribution: ``module`` plus a dist-info with its entry point
    (none when ``entry_point`` is false) and its ``Requires-Dist`` lines."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(metadata)
    if entry_point:
        (info / "entry_points.txt").write_text(f"[pipeline.plugins]\n{module} = {module}\n")


def pipeline_cli(
    site: Path, *args: str, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    """``python -m pipeline *args`` with ``site`` on the path (and ``env`` set)."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI")
    }
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        cwd=cwd,
    )


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """The ``error:`` lines of a finished command's stderr."""
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


# The sources of throwaway plugins that make one mistake each (tests/test_plugin_mistakes.py,
# and the plugin cases of tests/test_bad_inputs.py).

NOT_DERIVED = """
from dataclasses import dataclass
from pipeline.registry import encoders

@dataclass
class QRNNConfig:  # forgot ComponentConfig: no 'name' field
    hidden_size: int = 8

encoders.declare("qrnn", QRNNConfig, "qrnn_plugin:QRNN")
"""

LACKS_A_FIELD = """
from dataclasses import dataclass
from pipeline.contracts import Encoder
from pipeline.registry import ComponentConfig, describe, encoders

@dataclass
class QRNNConfig(ComponentConfig):
    hidden_size: int = describe("units", 8, min=1)

@encoders.register("qrnn", config=QRNNConfig)
class QRNN(Encoder):
    def __init__(self, config, input_dim):
        super().__init__(config, input_dim)
        self.causal = not config.bidirectional  # a field the config does not have
"""

#: Three mistakes ``plugins --check`` finds, and a class whose module must not be imported
#: by a plain ``plugins`` (it leaves a marker file when it is).
CHECKED = """
from dataclasses import dataclass
from pipeline.registry import ComponentConfig, describe, embeddings, encoders, poolers

@dataclass
class QRNNConfig(ComponentConfig):
    hidden_size: int = describe("units", 8, min=1)

@dataclass
class QEmbeddingConfig(ComponentConfig):
    dim: int = describe("size", 0, min=1)  # its default is out of its own bounds

encoders.declare("qrnn", QRNNConfig, "qrnn_plugin:QRNNN")  # a typo: the class is QRNN
poolers.declare("qpool", ComponentConfig, "qrnn_heavy:NotAPooler")
embeddings.declare("qemb", QEmbeddingConfig, "qrnn_heavy:QEmbedding")

class QRNN:
    pass
"""

HEAVY = """
import pathlib
pathlib.Path("heavy-imported").write_text("yes")
from pipeline.contracts import Embedding

class NotAPooler:  # not a pipeline.contracts.Pooler
    pass

class QEmbedding(Embedding):
    pass
"""
