"""A plugin author's mistakes, each in a throwaway installed package: one ``error:`` line
naming the component, the distribution and what to do (exit 2, no traceback), and only the
broken name is lost: ``--help``, ``plugins`` and every other component keep working.
``plugins --check`` imports and checks everything (exit 1 on a problem)."""

from __future__ import annotations

import pytest

from pipeline.plugins import missing_entry_points
from tests.plugin_packages import (
    CHECKED,
    HEAVY,
    LACKS_A_FIELD,
    NOT_DERIVED,
    error_lines,
    make_distribution,
    pipeline_cli,
)
from tests.run.test_runner import toy_reviews


def package(tmp_path, source: str, **options) -> object:
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "seqpipe-qrnn", "qrnn_plugin", source, **options)
    return site


def one_error(done) -> str:
    """The command's one ``error:`` line, after checking the exit code and no traceback."""
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = error_lines(done)
    return line


def run_on_toy_data(site, tmp_path, *args: str):
    train = toy_reviews(tmp_path / "train.csv", rows=60)
    tiny = ["trainer.max_epochs=1", "embedding.dim=8", "tracking=none", "trainer.progress=none"]
    return pipeline_cli(site, *args, "data=files", f"data.train={train}", *tiny, cwd=tmp_path)


def test_a_config_not_derived_from_component_config_disables_that_name(tmp_path):
    site = package(tmp_path, NOT_DERIVED)
    line = one_error(pipeline_cli(site, "encoder=qrnn", "tracking=none", cwd=tmp_path))
    assert "'qrnn'" in line and "'seqpipe-qrnn'" in line
    assert "Derive it from pipeline.registry.ComponentConfig" in line
    listed = pipeline_cli(site, "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (disabled,) = [row for row in listed.stdout.splitlines() if "DISABLED" in row]
    assert disabled.split()[0] == "qrnn" and "ComponentConfig" in disabled
    helped = pipeline_cli(site, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr


def test_a_config_lacking_a_field_its_class_reads_is_one_error(tmp_path):
    site = package(tmp_path, LACKS_A_FIELD)
    line = one_error(run_on_toy_data(site, tmp_path, "encoder=qrnn"))
    assert "encoder=qrnn" in line and "qrnn_plugin:QRNN" in line and "'seqpipe-qrnn'" in line
    assert "AttributeError" in line and "'bidirectional'" in line
    assert "add it to the config dataclass QRNNConfig" in line


def test_a_package_without_the_entry_point_is_named_where_its_component_is_asked_for(tmp_path):
    site = package(tmp_path, "QRNN = None\n", entry_point=False, requires=["seqpipe>=0.1"])
    line = one_error(pipeline_cli(site, "encoder=qrnn", "tracking=none", cwd=tmp_path))
    assert "Unknown option encoder=qrnn" in line
    assert "'seqpipe-qrnn'" in line and '[project.entry-points."pipeline.plugins"]' in line
    listed = pipeline_cli(site, "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (warning,) = [row for row in listed.stdout.splitlines() if row.startswith("warning:")]
    assert "'seqpipe-qrnn'" in warning and "entry-points" in warning


@pytest.mark.parametrize(
    "requires, entry_point, named",
    [
        (["seqpipe>=0.1"], False, True),
        (["SeqPipe (>=0.1)"], False, True),
        (["seqpipe>=0.1"], True, False),  # has its entry point
        (['seqpipe; extra == "pipeline"'], False, False),  # only for an extra
        (["seqpipe-tools"], False, False),  # another distribution
    ],
)
def test_which_installed_packages_look_like_a_forgotten_entry_point(
    tmp_path, monkeypatch, requires, entry_point, named
):
    package(tmp_path, "", entry_point=entry_point, requires=requires)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert ("seqpipe-qrnn" in missing_entry_points()) is named


def test_plugins_check_imports_and_checks_every_component(tmp_path):
    site = package(tmp_path, CHECKED)
    (site / "qrnn_heavy.py").write_text(HEAVY)
    listed = pipeline_cli(site, "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "qrnn_plugin.QRNNN" in listed.stdout  # named, not imported:
    assert not (tmp_path / "heavy-imported").exists()
    checked = pipeline_cli(site, "plugins", "--check", cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stdout + checked.stderr
    problems = [row for row in checked.stdout.splitlines() if row.startswith("problem:")]
    assert len(problems) == 3, checked.stdout
    typo, kind, default = (
        next(p for p in problems if f"{name} [seqpipe-qrnn]" in p)
        for name in ("encoder=qrnn", "pooler=qpool", "embedding=qemb")
    )
    assert "qrnn_plugin:QRNNN" in typo and "does not exist" in typo and "declare" in typo
    assert "not a pipeline.contracts.Pooler" in kind
    assert "embedding.dim=0 is too small" in default


def test_plugins_check_passes_on_the_built_ins(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    checked = pipeline_cli(site, "plugins", "--check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr
    assert "checked: no problems" in checked.stdout


def test_a_run_of_a_component_whose_target_is_broken_fails_before_the_data(tmp_path):
    site = package(tmp_path, CHECKED)
    missing = tmp_path / "missing.csv"  # read only after the components import
    done = pipeline_cli(
        site, "encoder=qrnn", "data=files", f"data.train={missing}", "tracking=none", cwd=tmp_path
    )
    line = one_error(done)
    assert "'qrnn' from 'seqpipe-qrnn'" in line and "qrnn_plugin:QRNNN" in line
    assert "missing.csv" not in line


def test_plugins_refuses_an_unknown_argument(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    line = one_error(pipeline_cli(site, "plugins", "--chek", cwd=tmp_path))
    assert "--chek" in line and "--check" in line
