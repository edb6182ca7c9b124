"""``inspect``'s HTML page in Debian's Chromium (Playwright): the text's tokens are there,
coloured by the chosen unit, and hovering one shows its values. Skipped, like the MLflow UI's
browser test, where the ``playwright`` package or ``/usr/bin/chromium`` is missing; set
``PIPELINE_TEST_SCREENSHOTS`` to keep the screenshot."""

from __future__ import annotations

import json

from tests import test_browser
from tests.cli import in_process
from tests.inference import test_inspect
from tests.inference.test_inspect import TEXT

# The fixtures this test shares: the tiny trained model, the browser and its page.
trained = test_inspect.trained
browser, page, screenshot_dir = test_browser.browser, test_browser.page, test_browser.screenshot_dir


def test_the_page_shows_the_text_coloured_by_a_unit(
    trained,
    page,
    screenshot_dir,
    tmp_path,
    capsys,
):
    out = tmp_path / "inspected"
    code, _, err = in_process(
        capsys, "inspect", f"model={trained['checkpoint']}", f"text={TEXT}", f"out={out}"
    )
    assert code == 0, err
    page.goto((out / "activations.html").as_uri())
    tokens = page.locator("#text .tok")
    assert tokens.all_inner_texts() == TEXT.split()
    assert "cell" in page.locator("#quantity").inner_text()
    colours = {span.evaluate("e => e.style.backgroundColor") for span in tokens.all()}
    assert all(c.startswith("rgb") for c in colours) and len(colours) > 1  # coloured, varying
    data = json.loads((out / "trace.json").read_text())
    page.select_option("#unit", "1")
    page.select_option("#quantity", "forget")
    tokens.nth(2).hover()
    info = page.locator("#info").inner_text()
    assert (
        f"unit {data['units'][1]}" in info
        and f"forget {data['quantities']['forget'][2][1]:.4f}" in info
    )
    page.screenshot(path=str(screenshot_dir / "inspect.png"), full_page=True)
    with capsys.disabled():
        print(f"\nscreenshot: {screenshot_dir / 'inspect.png'}")
