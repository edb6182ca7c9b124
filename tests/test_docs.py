"""The plugin guide's complete example (plugins/README.md) runs and passes the kit."""

from pathlib import Path

from pipeline import registry
from pipeline.testing import check_encoder

GUIDE = Path(__file__).resolve().parents[1] / "plugins" / "README.md"


def test_the_guide_example_encoder_passes_the_kit():
    text = GUIDE.read_text()
    block = text.split("# my_encoders/plugin.py\n", 1)[1].split("\nOne declaration", 1)[0]
    code = "\n".join(line[4:] for line in block.splitlines())  # un-indent the code block
    if "my_gru" not in registry.encoders:  # registering twice would be a duplicate
        exec(compile(code, str(GUIDE), "exec"), {})
    report = check_encoder("my_gru", hidden_size=8)
    report.assert_ok()
    assert {"causal", "state"} <= set(report.passed)
