"""vsockenc's configuration as a pipeline sets it, for the lint rules and other probes.

`VSOCKENC_DEFAULTS` holds vsockenc's own properties and their defaults (the vsockenc element's source);
`vsockenc_properties()` reads the first vsockenc's properties off a pipeline (integers as
ints, defaults filled in) and `vsockenc_endpoint()` says where it connects (unix socket,
TCP or vsock, in the element's order of precedence).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helixdiag.pipeline.syntax import Element, Pipeline, _as_pipeline

DEFAULT_TCP_PORT = 15937  # the vsockenc element's source: vsockenc's tcp-port default (= defaultQEMUPort)

# the vsockenc element's source: vsockenc's own properties and their defaults.
VSOCKENC_DEFAULTS: Mapping[str, Any] = {
    "socket-path": None,
    "cid": 2,
    "port": 5000,
    "tcp-host": None,
    "tcp-port": DEFAULT_TCP_PORT,
    "bitrate": 4_000_000,
    "keyframe-interval": 60,
}
_VSOCKENC_INT_PROPS = {"cid", "port", "tcp-port", "bitrate", "keyframe-interval"}


# ── vsockenc's configuration, for other probes ────────────────────────────────────────


def _to_int(value: str) -> int | str:
    text = value.strip()
    for base in (10, 0):
        try:
            return int(text, base)
        except ValueError:
            continue
    return value


def _props_of(el: Element, defaults: bool) -> dict[str, Any]:
    props: dict[str, Any] = dict(VSOCKENC_DEFAULTS) if defaults else {}
    for p in el.props:
        props[p.key] = _to_int(p.value) if p.key in _VSOCKENC_INT_PROPS else p.value
    return props


def vsockenc_properties(pipeline: str | Pipeline, *, defaults: bool = True) -> dict[str, Any]:
    """The first vsockenc's properties (the vsockenc element's source names), `{}` without a vsockenc.

    Integer properties are ints (the raw string if not a number); with `defaults` the
    element's defaults fill what the pipeline does not set (tcp-port 15937, …)."""
    p = _as_pipeline(pipeline)
    found = p.find("vsockenc")
    return _props_of(found[0], defaults) if found else {}


def vsockenc_endpoint(pipeline: str | Pipeline) -> tuple[Any, ...] | None:
    """Where the first vsockenc connects, in its own order of precedence (the vsockenc element's source):
    ('unix', path) | ('tcp', host, port) | ('vsock', cid, port); None without a vsockenc."""
    props = vsockenc_properties(pipeline)
    if not props:
        return None
    if props.get("socket-path"):
        return ("unix", props["socket-path"])
    if props.get("tcp-host"):
        return ("tcp", props["tcp-host"], props["tcp-port"])
    return ("vsock", props["cid"], props["port"])
