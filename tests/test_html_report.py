"""The HTML report, rendered by a real browser (headless Chromium) and looked at."""

from __future__ import annotations

import html.parser
import subprocess

import av
import numpy as np
import pytest
from conftest import require_tool

from helixdiag import selftest
from helixdiag.layers import LAYER_NAMES
from helixdiag.report import html as html_report

pytestmark = pytest.mark.timeout(120)

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def screenshot(tmp_path, page: str) -> tuple[np.ndarray, str]:
    chromium = require_tool("chromium")
    out = tmp_path / "shot.png"
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={out}",
         "--window-size=1200,900", f"file://{page}"],
        capture_output=True, text=True, timeout=90)
    assert out.exists(), proc.stderr[-2000:]
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
    return frame.to_ndarray(format="rgb24"), proc.stderr


def colour_pixels(image: np.ndarray, hex_colour: str, tolerance: int = 6) -> int:
    return int((np.abs(image.astype(int) - rgb(hex_colour)).max(axis=2) <= tolerance).sum())


@pytest.fixture(scope="module")
def stale_report():
    return selftest.diagnose("socket-stale")[0]


def test_html_is_self_contained_and_names_the_root_cause(stale_report):
    page = html_report.render(stale_report)
    parser = _Collector()
    parser.feed(page)
    assert parser.external == [], "no scripts, stylesheets or images from elsewhere"
    assert "socket-stale" in page and "ROOT CAUSE" in page
    hops = parser.hops
    layers = [h["data-layer"] for h in hops]
    assert layers == [name for name in LAYER_NAMES if name in layers]  # guest → host, data-path order
    assert {"guest-tcp", "socat", "unix-socket", "qemu", "stream"} <= set(layers)
    root = [h for h in hops if "root" in h["class"].split()]
    assert len(root) == 1 and root[0]["data-layer"] == "unix-socket" and root[0]["data-status"] == "fail"


def test_browser_renders_the_broken_hop_in_red(tmp_path, stale_report):
    page = tmp_path / "report.html"
    page.write_text(html_report.render(stale_report))
    image, log = screenshot(tmp_path, str(page))
    assert image.shape[0] >= 800 and image.shape[1] >= 1100
    assert "Uncaught" not in log and ":CONSOLE(" not in log, log[-2000:]
    # The path strip: red for failing hops, green for passing ones, in the top of the page.
    top = image[:250]
    assert colour_pixels(top, html_report.COLOURS["fail"]) > 2000
    assert colour_pixels(top, html_report.COLOURS["pass"]) > 2000
    # The root cause is outlined in black around a red hop.
    assert colour_pixels(top, "#000000", tolerance=10) > 300


def test_healthy_report_has_no_red(tmp_path):
    report, _ = selftest.diagnose(None)
    page = tmp_path / "healthy.html"
    page.write_text(html_report.render(report))
    image, _ = screenshot(tmp_path, str(page))
    assert colour_pixels(image, html_report.COLOURS["fail"]) == 0
    assert colour_pixels(image[:250], html_report.COLOURS["pass"]) > 2000


def test_secrets_never_reach_the_html(monkeypatch, stale_report):
    monkeypatch.setenv("HELIX_API_TOKEN", "tok-9f8e7d6c")
    stale_report.config["pipeline"] = "videotestsrc ! fakesink name=tok-9f8e7d6c"
    page = html_report.render(stale_report)
    assert "tok-9f8e7d6c" not in page
    assert "env:HELIX_API_TOKEN" in page


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.hops: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe") or (tag == "link" and a.get("href")):
            self.external.append(tag)
        if "data-layer" in a:
            self.hops.append(a)
