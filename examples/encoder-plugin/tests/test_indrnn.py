"""The plugin's own tests: seqpipe's conformance kit, plus what is special to IndRNN."""

import pytest
import torch

from pipeline.testing import check_encoder


@pytest.mark.parametrize("bidirectional", [False, True])
def test_indrnn_honours_the_encoder_contract(bidirectional):
    check_encoder("indrnn", hidden_size=6, num_layers=2, bidirectional=bidirectional).assert_ok()


def test_recurrent_weights_are_bounded():
    from pipeline import registry

    entry = registry.encoders.get("indrnn")
    encoder = entry.cls(entry.config(name="indrnn", hidden_size=4, recurrent_max=0.5), 3)
    layer = encoder.layers[0][0]
    with torch.no_grad():
        layer.recurrent.fill_(10.0)
    x = torch.ones(1, 3, 3)
    out, _ = layer(x)
    # with u clamped to 0.5: h1 = p, h2 = p + 0.5 p, h3 = p + 0.5 * 1.5 p
    p = torch.relu(layer.input(x[:, 0]))
    torch.testing.assert_close(out[:, 2], p * 1.75)


def test_registered_through_the_entry_point():
    from pipeline import registry

    assert registry.encoders.get("indrnn").provider == "seqpipe-indrnn"
