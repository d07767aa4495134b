"""The guest agent end to end: the guest side runs in a clean interpreter that cannot see
the project's virtualenv (no numpy, PyAV, psutil, click, rich there), against the real
`serve` and a private PipeWire on loopback, and each case gives the diagnosis a locally
installed helixdiag (`run --side guest`) gives."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
from agent_helpers import agent_run, clean_prefix, local_run, python38_path, verdict
from run_helpers import kill_group, start_serve

from helixdiag import selftest

if TYPE_CHECKING:
    from pipewire_env import PipeWireStack, Source

pytest_plugins = ("pipewire_env",)  # the pipewire_stack fixture

pytestmark = pytest.mark.timeout(120)

NET = ["guest-tcp"]


def options(port: int, timeout: str = "1", mode: str = "request") -> dict[str, str]:
    """vsockenc's request path unless told: its one frame is what these cases judge."""
    return {"host": "127.0.0.1", "port": str(port), "timeout": timeout, "mode": mode}


@pytest.fixture
def serve(request):
    """`helixdiag serve` with the test's arguments (parametrized), on a free loopback port."""
    proc, address = start_serve("--tcp", "127.0.0.1:0", *request.param)
    try:
        yield int(address.rsplit(":", 1)[1])
    finally:
        kill_group(proc)


@pytest.mark.parametrize(("serve", "root"), [
    ((), None),
    (("--fault", "hang"), "guest-no-reply"),
    (("--fault", "ignore-frame-request"), "frame-request-ignored"),
    (("--generation", "h4"), "frame-request-ignored"),
], indirect=["serve"], ids=["healthy", "hang", "ignore-frame-request", "h4"])
def test_network_cases_match_a_local_run(serve, root):
    agent = agent_run(clean_prefix(), NET, options(serve))
    local = local_run(NET, options(serve))
    assert verdict(agent) == verdict(local)
    assert verdict(agent)[1] == root
    assert agent["environment"]["versions"]["pyav"] is None  # the guest had no PyAV


def test_nothing_listening_matches_a_local_run():
    port = selftest.free_port()
    agent = agent_run(clean_prefix(), NET, options(port))
    assert verdict(agent) == verdict(local_run(NET, options(port)))
    assert verdict(agent)[1] == "guest-tcp-refused"


@pytest.mark.parametrize(("serve", "finding"), [((), None), (("--fault", "no-sps"), "stream-no-sps-pps"),
                                               (("--fault", "bad-magic"), "stream-bad-magic")],
                         indirect=["serve"], ids=["healthy", "no-sps", "bad-magic"])
def test_the_frame_is_decoded_and_judged_on_the_host(serve, finding):
    """PING answers, so guest-tcp.ping passes either way; what is wrong with the frame is in
    its evidence, found by the decoder here (no-sps) or by the guest's reader (bad-magic)."""
    agent = agent_run(clean_prefix(), NET, options(serve))
    local = local_run(NET, options(serve))
    ping = next(p for p in agent["probes"] if p["id"] == "guest-tcp.ping")
    frame, here = ping["evidence"]["frame"], next(p for p in local["probes"] if p["id"] == "guest-tcp.ping")
    assert frame["judged_on"] == "host" and "raw" not in frame
    assert frame["replies_recorded"] == frame["frames"]["received"] == here["evidence"]["frame"]["frames"]["received"]
    assert frame["status"] == here["evidence"]["frame"]["status"]
    assert [f["failure_id"] for f in frame["findings"]] == \
        [f["failure_id"] for f in here["evidence"]["frame"]["findings"]]
    assert frame["frames"]["decoded"] == here["evidence"]["frame"]["frames"]["decoded"]
    assert ping["summary"] == here["summary"]
    assert [f["failure_id"] for f in frame["findings"]] == ([finding] if finding else [])
    if finding is None:
        assert frame["frames"]["decoded"] == 1 and frame["psnr_db"]["min"] > 25


@pytest.mark.parametrize(("serve", "finding"), [(("--fps", "30"), None),
                                               (("--fps", "30", "--fault", "no-sps"), "stream-no-sps-pps")],
                         indirect=["serve"], ids=["healthy", "no-sps"])
def test_the_subscription_is_recorded_on_the_guest_and_judged_on_the_host(serve, finding):
    """--mode auto: the guest subscribes like desktop-bridge; the pushed frames travel home as
    bytes and are decoded here, so a keyframe without SPS/PPS fails as it does locally."""
    agent = agent_run(clean_prefix(), NET, options(serve, mode="auto"))
    local = local_run(NET, options(serve, mode="auto"))
    sub = next(p for p in agent["probes"] if p["id"] == "guest-tcp.subscribe")
    here = next(p for p in local["probes"] if p["id"] == "guest-tcp.subscribe")
    assert sub["evidence"]["subscription"]["judged_on"] == "host" and "raw" not in sub["evidence"]["subscription"]
    assert (sub["status"], sub["failure_id"]) == (here["status"], here["failure_id"]) == \
        (("fail", finding) if finding else ("pass", None)), (sub["summary"], here["summary"])
    assert sub["evidence"]["mode_chosen"] == here["evidence"]["mode_chosen"] == "scanout: the host answered SUBSCRIBE"
    if finding is None:
        assert sub["evidence"]["subscription"]["frames"]["decoded"] >= 2


@pytest.mark.parametrize("serve", [()], indirect=True)
def test_the_payload_runs_on_python_3_8(serve, tmp_path):
    path = python38_path(tmp_path / "bin")
    if path is None:
        pytest.skip("no Python 3.8 on this machine (pyenv 3.8.18); the vermin check still holds the floor")
    agent = agent_run(clean_prefix(path), NET, options(serve))
    assert agent["environment"]["versions"]["python"].startswith("3.8.")
    assert verdict(agent) == verdict(local_run(NET, options(serve)))


def _stall_after_a_burst(stack: PipeWireStack, src: Source) -> threading.Thread:
    """SIGSTOP the producer once a consumer pulls frames: the static-screen stall."""
    def stop() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            node = next((o for o in stack.pw_dump() if o["id"] == src.node_id), None)
            if node and node["info"].get("state") == "running":
                time.sleep(0.25)
                src.pause()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("stalled", [False, True], ids=["flowing", "stalled"])
def test_pipewire_matches_a_local_run(pipewire_stack, stalled):
    runtime = str(pipewire_stack.runtime_dir)
    verdicts = []
    for run in (lambda: agent_run(clean_prefix(XDG_RUNTIME_DIR=runtime), ["pipewire"], {"timeout": "1"}),
                lambda: local_run(["pipewire"], {"timeout": "1"}, env={"XDG_RUNTIME_DIR": runtime})):
        src = pipewire_stack.start_source()
        try:
            stopper = _stall_after_a_burst(pipewire_stack, src) if stalled else None
            verdicts.append(verdict(run()))
            if stopper is not None:
                stopper.join(timeout=10)
        finally:
            pipewire_stack.stop_source(src)
    assert verdicts[0] == verdicts[1]
    assert verdicts[0][1] == ("pipewire-static-stall" if stalled else None), verdicts[0]
