"""Entry-point discovery with real (throwaway) distributions on the path: a plugin that
raises on import is reported and skipped; a name two providers register is disabled (both
named), and every other component, ``--help`` and the runs that do not use it still work."""

from __future__ import annotations

from tests.plugin_packages import error_lines, make_distribution, pipeline_cli
from tests.run.test_runner import toy_reviews


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


CLASH = (
    "from pipeline.registry import encoders\n"
    "from plugins.encoders.rnn import LSTMEncoder, RNNConfig\n"
    "@encoders.register('lstm', config=RNNConfig)\n"
    "class MyLSTM(LSTMEncoder):\n"
    "    pass\n"
)


def test_two_providers_of_one_name_is_an_error_naming_both(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "zz-my-lstm", "zz_my_lstm", CLASH)
    done = pipeline_cli(site, "encoder=lstm", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done)
    assert "'seqpipe'" in line and "'zz-my-lstm'" in line and "'lstm'" in line
    assert "Uninstall one" in line


def test_a_clash_disables_only_that_name(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "zz-my-lstm", "zz_my_lstm", CLASH)
    helped = pipeline_cli(site, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "encoder: " in helped.stdout and "gru" in helped.stdout
    listed = pipeline_cli(site, "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (disabled,) = [line for line in listed.stdout.splitlines() if "DISABLED" in line]
    assert disabled.split()[0] == "lstm" and "'zz-my-lstm'" in disabled and "'seqpipe'" in disabled
    assert "plugins.encoders.rnn.GRUEncoder" in listed.stdout
    train = toy_reviews(tmp_path / "train.csv", rows=60)
    tiny = ["trainer.max_epochs=1", "encoder.hidden_size=8", "embedding.dim=8"]
    other = pipeline_cli(
        site,
        "encoder=gru",
        "data=files",
        f"data.train={train}",
        "tracking=none",
        "trainer.progress=none",
        *tiny,
        cwd=tmp_path,
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert "test/accuracy" in other.stdout
