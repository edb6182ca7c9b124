"""The mask probe at model build (pipeline.model.mask_probe): an encoder that ignores the
mask gets one warning line naming it and its distribution, in a real run; no built-in does;
the probe leaves torch's RNG and the encoder's mode as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline import registry
from pipeline.contracts import ComponentConfig, Encoder, EncoderOutput
from pipeline.model.mask_probe import ignores_mask, warn_if_mask_ignored
from tests.cli import cli_env, run_pipeline
from tests.run.test_runner import toy_reviews
from tests.test_plugin_discovery import make_distribution

SMALL = {"transformer": dict(d_model=8, nhead=2, dim_feedforward=16), "cnn": dict(channels=3)}


@pytest.mark.parametrize("name", registry.encoders.names())
def test_no_built_in_encoder_is_warned_about(name, capsys):
    entry = registry.encoders.get(name)
    encoder = entry.cls(entry.config(name=name, **SMALL.get(name, {})), 6)
    assert not ignores_mask(encoder)
    warn_if_mask_ignored(encoder, name)
    assert capsys.readouterr().err == ""


class MeanOverPadding(Encoder):
    """Adds the mean over every step, padding included, and draws noise in eval too."""

    def __init__(self, config: ComponentConfig, input_dim: int) -> None:
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 4)
        self.output_dim = 4

    def forward(self, x, mask, state=None):
        out = self.linear(x + x.mean(dim=1, keepdim=True)) + 1e-3 * torch.randn(1)
        return EncoderOutput(out * mask.unsqueeze(2))


def test_the_probe_leaves_the_rng_and_the_mode_as_they_were():
    encoder = MeanOverPadding(ComponentConfig(name="mean_over_padding"), 6).train()
    torch.manual_seed(7)
    before = torch.get_rng_state()
    assert ignores_mask(encoder)
    assert torch.equal(torch.get_rng_state(), before) and encoder.training


SOURCE = """
import torch
from torch import nn
from pipeline.contracts import ComponentConfig, Encoder, EncoderOutput
from pipeline.registry import encoders

@encoders.register("zz_maskless", config=ComponentConfig)
class Maskless(Encoder):
    def __init__(self, config, input_dim):
        super().__init__(config, input_dim)
        self.linear = nn.Linear(input_dim, 8)
        self.output_dim = 8

    def forward(self, x, mask, state=None):
        return EncoderOutput(self.linear(x + x.mean(dim=1, keepdim=True)))
"""


def test_a_run_with_an_encoder_that_ignores_the_mask_warns_once(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "zz-maskless-dist", "zz_maskless", SOURCE)
    train = toy_reviews(tmp_path / "train.csv", rows=60)
    env = cli_env()
    env["PYTHONPATH"] = f"{site}:{env.get('PYTHONPATH', '')}"
    args = ["data=files", f"data.train={train}", "encoder=zz_maskless", "pooler=mean"]
    args += ["tracking=none", "trainer.progress=none", "trainer.max_epochs=1", "embedding.dim=8"]
    done = run_pipeline(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    warning = (
        "warning: encoder=zz_maskless from 'zz-maskless-dist' changes real tokens' outputs "
        "with padding: it ignores the mask; run pipeline.testing.check_encoder('zz_maskless') "
        "to see which check fails"
    )
    assert done.stderr.count(warning) == 1, done.stderr
