"""Diagnosis as data over a graph: which layer needs which, and which failure explains which.

The root cause is the failing probe that nothing else failing explains: a layer's failure
explains every failure in the layers that depend on it (transitively), and a few failures
explain others directly (`EXPLAINS`), where the data path alone would point the wrong way —
a stale socket file is why QEMU's bind failed, not the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable

from helixdiag.failures import CATALOG
from helixdiag.layers import LAYER_NAMES
from helixdiag.results import Diagnosis, ProbeResult, RootCause, Status

# layer → the layers it needs, per topology. The guest's TCP hop needs the host's listener
# and the host endpoint actually answering (`stream` talks to it directly), so a failing
# `stream` explains `guest-no-reply`, never the other way round.
_COMMON = {
    "pipewire": (),
    "vsockenc": ("pipewire", "guest-tcp"),
    "encoder": (),
    "qemu": (),
    # The scanout path: a desktop draws only on a leased scanout, and the bridge's stream
    # needs that scanout and the guest's TCP path to the host.
    "drm-manager": (),
    "scanout": ("drm-manager",),
    "desktop-bridge": ("scanout", "guest-tcp"),
}
DEPENDS_ON: dict[str, dict[str, tuple[str, ...]]] = {
    "socat": {
        **_COMMON,
        "guest-tcp": ("socat", "stream"),
        "socat": ("unix-socket",),
        "unix-socket": ("qemu",),
        "stream": ("unix-socket", "encoder"),
    },
    "tcp": {
        **_COMMON,
        "guest-tcp": ("qemu", "stream"),
        "socat": (),
        "unix-socket": (),
        "stream": ("qemu", "encoder"),
    },
}
DEPENDS_ON["unknown"] = DEPENDS_ON["tcp"]

# failure id → the failure ids it explains regardless of the layer order, and the failures
# that are facts about a component itself: both are declared on the catalog entries.
EXPLAINS: dict[str, frozenset[str]] = {fid: f.explains for fid, f in CATALOG.items() if f.explains}
INTRINSIC: frozenset[str] = frozenset(fid for fid, f in CATALOG.items() if f.intrinsic)


def needs_closure(topology: str) -> dict[str, set[str]]:
    """layer → every layer it needs, directly or not."""
    graph = DEPENDS_ON.get(topology, DEPENDS_ON["tcp"])
    closure: dict[str, set[str]] = {}

    def visit(layer: str, trail: tuple[str, ...]) -> set[str]:
        if layer in closure:
            return closure[layer]
        out: set[str] = set()
        for dep in graph.get(layer, ()):
            if dep not in trail:
                out.add(dep)
                out |= visit(dep, (*trail, dep))
        closure[layer] = out
        return out

    for name in LAYER_NAMES:
        visit(name, (name,))
    return closure


def _explains(cause: ProbeResult, effect: ProbeResult, closure: dict[str, set[str]]) -> bool:
    if cause is effect:
        return False
    c_id, e_id = cause.failure_id or "", effect.failure_id or ""
    if e_id in EXPLAINS.get(c_id, ()):
        return True
    if c_id in EXPLAINS.get(e_id, ()) or e_id in INTRINSIC:
        return False  # the explicit rules win over the layer order
    return cause.layer in closure.get(effect.layer, set())


def _reachable(start: int, edges: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    todo = list(edges[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return seen


def diagnose(results: Iterable[ProbeResult], topology: str) -> Diagnosis:
    results = list(results)
    failing = [r for r in results if r.status == Status.FAIL and r.failure_id]
    warnings = [r for r in results if r.status == Status.WARN and r.failure_id]
    errors = [r for r in results if r.status == Status.ERROR]
    closure = needs_closure(topology)

    # A failure is a root unless something outside its own explanation cycle explains it.
    # (EXPLAINS can point against the layer order, so cycles exist, e.g. socat-port-conflict →
    # qemu-bind-failed → socket-permission → socat-port-conflict; then the whole cycle is a
    # candidate and the depth order below picks one, instead of naming no root at all.)
    edges = {i: [j for j, e in enumerate(failing) if _explains(c, e, closure)] for i, c in enumerate(failing)}
    reach = {i: _reachable(i, edges) for i in edges}
    roots = [r for j, r in enumerate(failing) if not any(j in edges[i] and i not in reach[j] for i in edges)]
    # Deepest first: the layer that most others need, then data-path order.
    depth = {name: sum(name in needs for needs in closure.values()) for name in LAYER_NAMES}
    roots.sort(key=lambda r: (-depth.get(r.layer, 0), LAYER_NAMES.index(r.layer)))

    root_cause = None
    symptoms: list[dict[str, str]] = []
    if roots:
        top = roots[0]
        entry = CATALOG.get(top.failure_id or "")
        root_cause = RootCause(
            failure_id=top.failure_id or "",
            layer=top.layer,
            probe=top.id,
            explanation=top.summary + (f" — {entry.explanation}" if entry else ""),
            remedy=top.remedy or (entry.remedy if entry else ""),
        )
        symptoms = [
            {"probe": r.id, "failure_id": r.failure_id or ""}
            for r in failing if r is not top and _explains(top, r, closure)
        ]

    ordered = ([roots[0]] if roots else []) + [r for r in failing + warnings if not roots or r is not roots[0]]
    findings: list[str] = []
    for r in ordered:
        if r.failure_id and r.failure_id not in findings:
            findings.append(r.failure_id)
    # A FAIL without a failure id still fails the run (exit 1), it just names no finding.
    failed_any = failing or any(r.status == Status.FAIL for r in results)
    status = "fail" if failed_any or errors else "warn" if warnings else "pass"
    return Diagnosis(status, root_cause, findings, symptoms)
