"""The self-test's stacks, each with the breaks that must be diagnosed as one failure id.

    tcp-scanout    today's path: an H4 host (a stand-in QEMU on its helix-port), the
                   drm-manager stand-in, a desktop holding a lease (so the host draws on
                   scanout 1), and the diagnosis subscribing to it like desktop-bridge
    tcp-request    an H2 host on its TCP port, asked like vsockenc
    socat-request  socat in front of `serve` on a Unix socket (H2 framing): the first setup

A break changes one thing and names the failure id the diagnosis must name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helixdiag.faults import Fault, parse_fault
from helixdiag.selftest.pipewire import PipeWireUnavailable
from helixdiag.selftest.stack import HostOptions, Stack, free_port


@dataclass(frozen=True)
class Scenario:
    name: str  # what --break takes
    description: str
    build: Callable[[Stack], dict]  # sets up the stack; returns RunConfig overrides
    expected: str = ""  # the failure id the diagnosis must name (default: the name)

    @property
    def id(self) -> str:
        return self.expected or self.name


@dataclass(frozen=True)
class StackSpec:
    name: str
    title: str
    healthy: Callable[[Stack], dict]
    scenarios: dict[str, Scenario] = field(default_factory=dict)


# ----------------------------------------------------------------------------- socat-request

def _healthy(s: Stack) -> dict:
    s.start_serve()
    s.start_socat()
    with contextlib.suppress(PipeWireUnavailable):  # "where available"
        s.start_pipewire()
    return {}


def _stalled_screen(s: Stack) -> dict:
    s.start_serve()
    s.start_socat()
    s.start_pipewire()  # raises PipeWireUnavailable: the scenario cannot run here
    source = s.pipewire_source

    def freeze() -> None:
        time.sleep(0.4)  # a first burst of frames, then the producer stops (SIGSTOP)
        source.pause()

    s.during_run.append(freeze)
    s.notes.append("the video source freezes (SIGSTOP) 0.4 s into the run")
    return {}


def _with_fault(name: str) -> Callable[[Stack], dict]:
    def build(s: Stack) -> dict:
        s.start_serve(Fault(name))
        s.start_socat()
        return {}
    return build


def _stale(s: Stack) -> dict:
    s.make_stale_socket()  # left by an earlier QEMU: older than the running one
    # Process start times are only known to about a second (Linux: boot time in whole
    # seconds), so age the file like a real leftover rather than racing the clock.
    os.utime(s.socket_path, (time.time() - 60, time.time() - 60))
    s.start_fake_qemu()
    s.start_socat()
    return {}


def _missing(s: Stack) -> dict:
    s.start_fake_qemu()
    s.start_socat()  # socat is fine; QEMU never created its socket
    return {}


def _not_a_socket(s: Stack) -> dict:
    s.start_fake_qemu()
    Path(s.socket_path).write_text("not a socket: a regular file where QEMU wants to bind\n")
    s.start_socat()
    return {}


def _no_socat(s: Stack) -> dict:
    s.start_serve()
    return {}


def _wrong_target(s: Stack) -> dict:
    s.start_serve()
    s.start_socat(target=str(s.root / "elsewhere" / "helix-frame-export.sock"))
    return {}


def _port_conflict(s: Stack) -> dict:
    s.start_serve()
    s.hold_port_with_stranger()
    return {}



_SOCAT_REQUEST = (
    Scenario("socket-stale", "QEMU and socat run; the socket file's owner is gone", _stale),
    Scenario("socket-missing", "QEMU and socat run; QEMU never created its socket", _missing),
    Scenario("socat-not-running", "the host serves the socket; no socat forwards the port", _no_socat),
    Scenario("socat-wrong-target", "socat forwards to a path where nothing is", _wrong_target),
    Scenario("stream-no-reply", "the host accepts and reads but never replies (serve --fault hang)",
             _with_fault("hang")),
    Scenario("stream-bad-magic", "the host's replies start with a wrong magic", _with_fault("bad-magic")),
    Scenario("stream-no-sps-pps", "keyframes come without SPS/PPS (the H0/H1 host)", _with_fault("no-sps")),
    Scenario("socket-not-a-socket", "a regular file sits where the socket should be", _not_a_socket),
    Scenario("socat-port-conflict", "an unrelated process holds the guest-facing port", _port_conflict),
    Scenario("pipewire-static-stall", "the screen source sends a burst of frames, then freezes "
             "(needs PipeWire)", _stalled_screen),
)




# ----------------------------------------------------------------------------- tcp-request

_TCP = {"topology": "tcp", "socket": None, "mode": "request"}


def _tcp_request(generation: str = "h2", fault: str | None = None, *, serve: bool = True) -> Callable[[Stack], dict]:
    def build(s: Stack) -> dict:
        s.port = free_port()  # the guest dials QEMU's own port
        s.start_fake_qemu(s.port, serve=serve, fault=_fault(fault), host=HostOptions(generation=generation, idle=None))
        return dict(_TCP)
    return build


_TCP_REQUEST = (
    Scenario("h4-host", "vsockenc asks an H4 host, which skips FRAME_REQUEST and answers only PING",
             _tcp_request("h4"), "frame-request-ignored"),
    Scenario("still-booting", "QEMU has just started with helix-port=N and does not listen yet (the export "
             "starts with the guest GPU driver's first command)", _tcp_request(serve=False), "qemu-still-booting"),
    Scenario("error-reply", "the H2 host answers every frame with ERROR -5", _tcp_request("h2", "error=-5"),
             "encoder-error"),
    Scenario("hang", "the H2 host accepts and reads but never replies", _tcp_request("h2", "hang"),
             "stream-no-reply"),
)


# ----------------------------------------------------------------------------- tcp-scanout

SCANOUT_HOST = HostOptions(generation="h4", picture="moving", fps=30, size=(320, 240), idle=None)
# `--mode auto`, as an engineer runs it: the subscription decides scanout. Both sides here,
# so the guest layers (the drm-manager stand-in, the subscription) are judged too.
_SCANOUT = {"topology": "tcp", "socket": None, "mode": "auto", "side": "both"}


def _tcp_scanout(fault: str | None = None, manager_fault: str | None = None, host: HostOptions = SCANOUT_HOST,
                 desktop: bool = True, viewer_s: float = 0.2, **config) -> Callable[[Stack], dict]:
    def build(s: Stack) -> dict:
        s.port = free_port()
        s.start_fake_qemu(s.port, serve=True, fault=_fault(fault), host=host)
        manager = s.start_drm_manager(s.port, fault=Fault(manager_fault) if manager_fault else None,
                                      outputs=host.max_outputs)
        lease = s.start_desktop(*host.size) if manager is not None and desktop else None
        if lease is not None:
            s.start_viewer(s.port, lease.scanout_id)
            time.sleep(viewer_s)  # what the host does with the viewer reaches its log
        elif not s.drm_socket or not os.path.exists(s.drm_socket):
            s.notes.append("desktop: no lease (the drm-manager socket is not there)")
        return {**_SCANOUT, "drm_socket": s.drm_socket or str(s.root / "drm.sock"),
                "drm_log": str(s.root / "drm-manager.log"), "qemu_log": str(s.root / f"qemu-{s.port}.log"),
                **config}
    return build


def _fault(text: str | None) -> Fault | None:
    return parse_fault(text) if text else None


def _slots_taken(s: Stack) -> dict:
    """Every client slot of the host held by a stray client: the next connection is closed."""
    config = _tcp_scanout()(s)
    s.hold_client_slots(s.port, 16)
    return config


_TCP_SCANOUT = (
    Scenario("bad-magic", "the host's pushed frames start with a wrong magic", _tcp_scanout("bad-magic"),
             "stream-bad-magic"),
    Scenario("no-sps", "pushed keyframes come without SPS/PPS", _tcp_scanout("no-sps"), "stream-no-sps-pps"),
    Scenario("avcc", "pushed frames are length-prefixed (AVCC), not Annex-B", _tcp_scanout("avcc"), "stream-avcc"),
    Scenario("close-after-subscribe", "the host answers SUBSCRIBE, then closes the connection",
             _tcp_scanout("close-after-subscribe"), "scanout-connection-lost"),
    Scenario("drop-after", "the host drops the viewer's subscription, silent after SUBSCRIBE (its read timeout, "
             "here 0.5 s)", _tcp_scanout("drop-after=0.5", viewer_s=0.8), "scanout-idle-drop"),
    Scenario("no-frames", "the host captures frames for the subscriber and never encodes or pushes one",
             _tcp_scanout("no-frames"), "scanout-no-frames"),
    Scenario("double-init", "the export initialised twice: subscribers are invisible to the frame path",
             _tcp_scanout("double-init"), "scanout-no-frames"),
    Scenario("slots-exhausted", "stray clients hold all 16 of the host's client slots", _slots_taken,
             "scanout-slots-exhausted"),
    Scenario("outputs-missing", "QEMU runs without max_outputs=16: one output, no scanout for a desktop",
             _tcp_scanout(host=dataclasses.replace(SCANOUT_HOST, max_outputs=1)), "scanout-outputs-missing"),
    Scenario("not-rendered", "the subscriber asks for scanout 5; the desktop leased and draws on 1",
             _tcp_scanout(scanout_id=5), "scanout-not-rendered"),
    Scenario("pool-empty", "the drm-manager has no scanout left: the desktop gets no lease, nothing draws",
             _tcp_scanout(manager_fault="pool-empty"), "scanout-pool-exhausted"),
    Scenario("no-master", "the drm-manager cannot become DRM master and exits: no lease, nothing draws",
             _tcp_scanout(manager_fault="no-master"), "drm-manager-not-master"),
    Scenario("wrong-port", "the drm-manager sends ENABLE_SCANOUT to a port nothing listens on",
             _tcp_scanout(manager_fault="wrong-port"), "drm-manager-wrong-port"),
    Scenario("drm-manager-down", "no drm-manager: its socket is gone, no desktop has a lease",
             _tcp_scanout(manager_fault="no-master", desktop=False, drm_log=None), "drm-manager-not-running"),
)


def _table(scenarios: tuple[Scenario, ...]) -> dict[str, Scenario]:
    return {sc.name: sc for sc in scenarios}


# Modern first: `selftest` shows them in this order.
STACKS: dict[str, StackSpec] = {spec.name: spec for spec in (
    StackSpec("tcp-scanout", "an H4 host, the drm-manager stand-in, a desktop holding a lease, a subscriber",
              _tcp_scanout(), _table(_TCP_SCANOUT)),
    StackSpec("tcp-request", "an H2 host on its TCP port, asked like vsockenc", _tcp_request(),
              _table(_TCP_REQUEST)),
    StackSpec("socat-request", "socat in front of serve on a Unix socket (H2 framing)", _healthy,
              _table(_SOCAT_REQUEST)),
)}
DEFAULT_STACK = "socat-request"
