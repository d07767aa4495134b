"""The stream probes against the reference host with known host bugs, through the runner."""

from __future__ import annotations

import pytest
from conftest import endpoint_of, running_server

from helixdiag import runner
from helixdiag.config import RunConfig
from helixdiag.faults import Fault
from helixdiag.probes import REGISTRY, load
from helixdiag.results import Status

pytestmark = pytest.mark.timeout(60)


def stream_results(server, **config):
    load()
    ep = endpoint_of(server)
    cfg = RunConfig(side="host", topology="tcp", port=ep.port, timeout=1.0, **config)
    cfg.sources = {"port": "--port", "topology": "--topology", **{k: f"--{k}" for k in config}}
    report = runner.Runner(cfg, [REGISTRY["stream.ping"], REGISTRY["stream.exchange"]]).run()
    return {p.id: p for p in report.probes}


def test_auto_mode_subscribes_first_so_a_scanout_only_host_is_healthy():
    """A host that skips FRAME_REQUEST but pushes to subscribers (H4) is today's healthy host:
    --mode auto subscribes first, like desktop-bridge, and never sends a FRAME_REQUEST."""
    with running_server(fault=Fault("ignore-frame-request"), fps=30) as server:
        results = stream_results(server)
    ping, exchange = results["stream.ping"], results["stream.exchange"]
    assert ping.status == Status.PASS
    assert exchange.status == Status.PASS, exchange.summary
    assert exchange.evidence["mode_chosen"] == "scanout: the host answered SUBSCRIBE"
    assert exchange.evidence["subscription"]["frames"]["decoded"] >= 1
    assert "latency_ms" not in exchange.evidence  # no request-mode exchange was made


def test_request_mode_against_a_scanout_only_host_says_to_use_scanout_mode():
    with running_server(fault=Fault("ignore-frame-request"), fps=30) as server:
        results = stream_results(server, mode="request")
    exchange = results["stream.exchange"]
    assert exchange.failure_id == "frame-request-ignored"
    assert "use scanout mode" in exchange.summary and "HELIX_VIDEO_MODE=scanout" in exchange.summary
    assert exchange.evidence["mode_chosen"] == "request (--mode request)"


def test_scanout_is_not_tried_when_the_mode_was_chosen():
    with running_server(fault=Fault("ignore-frame-request"), fps=30) as server:
        results = stream_results(server, mode="request")
    exchange = results["stream.exchange"]
    assert exchange.failure_id == "frame-request-ignored"
    assert "scanout" not in exchange.evidence


def test_scanout_mode_exchange_passes_against_a_healthy_host():
    with running_server(fps=30) as server:
        results = stream_results(server, mode="scanout")
    exchange = results["stream.exchange"]
    assert exchange.status == Status.PASS, exchange.summary
    sub = exchange.evidence["subscription"]
    assert sub["mode"] == "scanout" and sub["scanout"]["subscribed"]
    assert sub["frames"]["received"] >= 2 and sub["frames"]["keyframes"] >= 1  # a keyframe and a frame after it
