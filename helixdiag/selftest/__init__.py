"""The bundled local stacks, diagnosed — and broken on purpose, one thing at a time.

Three stacks (`scenarios.STACKS`, modern first): `tcp-scanout` (today's path: an H4 host, the
drm-manager stand-in, a desktop holding a lease, a subscriber), `tcp-request` (an H2 host
asked like vsockenc) and `socat-request` (socat in front of `serve` on a Unix socket). Each
lives in a temporary directory on loopback only and is torn down completely, also on Ctrl-C.
A break changes one thing, and the self-test passes only when the diagnosis names the failure
id that break stands for.
"""

from __future__ import annotations

import threading

from helixdiag.config import RunConfig
from helixdiag.errors import ConfigError, UsageError
from helixdiag.report.model import Report
from helixdiag.selftest.scenarios import DEFAULT_STACK, STACKS, Scenario, StackSpec
from helixdiag.selftest.stack import FAKE_QEMU_NAME, HostOptions, Stack, free_port, wait_listening

__all__ = ["DEFAULT_STACK", "FAKE_QEMU_NAME", "SCENARIOS", "STACKS", "HostOptions", "Scenario", "Stack", "StackSpec",
           "build", "diagnose", "find", "free_port", "loopback_only", "scenario_names", "verdict", "wait_listening"]

# The socat-request stack's breaks, by the failure id each is named by (the first stack's API).
SCENARIOS: dict[str, Scenario] = STACKS[DEFAULT_STACK].scenarios


def scenario_names(stack: str | None = None) -> list[str]:
    """Every break's name (of one stack, or of all: each name belongs to one stack)."""
    specs = [STACKS[stack]] if stack else list(STACKS.values())
    return [name for spec in specs for name in spec.scenarios]


def find(break_id: str | None, stack: str | None = None) -> tuple[StackSpec, Scenario | None]:
    """The stack and break named; a break alone finds its stack (names are unique)."""
    if stack is not None and stack not in STACKS:
        raise UsageError(f"unknown --stack {stack!r}; choose one of: {', '.join(STACKS)}")
    if break_id is None:
        return STACKS[stack or DEFAULT_STACK], None
    for spec in [STACKS[stack]] if stack else STACKS.values():
        if break_id in spec.scenarios:
            return spec, spec.scenarios[break_id]
    where = f" of stack {stack}" if stack else ""
    raise UsageError(f"unknown --break {break_id!r}{where}; choose one of: all, "
                     f"{', '.join(scenario_names(stack))}")


def build(break_id: str | None, stack: str | None = None) -> tuple[Stack, RunConfig]:
    """Start a stack (healthy, or with one break); the caller must close() it."""
    spec, scenario = find(break_id, stack)
    parts = Stack()
    try:
        overrides = (scenario.build if scenario else spec.healthy)(parts)
        cfg = parts.run_config(**overrides)
        cfg.sources.update({k: "selftest" for k in overrides})
        return parts, cfg
    except BaseException:
        parts.close()
        raise


def diagnose(break_id: str | None, stack: str | None = None) -> tuple[Report, list[str]]:
    """Build the stack (healthy or with one break), run every probe that applies against it,
    tear it down; the report and what was started."""
    from helixdiag import runner

    parts, cfg = build(break_id, stack)
    with parts, parts.client_environment():
        loopback_only(cfg)
        for action in parts.during_run:
            threading.Thread(target=action, name="selftest-break", daemon=True).start()
        report = runner.Runner(cfg, runner.select([], True)).run()
        return report, list(parts.notes)


def verdict(break_id: str | None, report: Report, stack: str | None = None) -> tuple[bool, str]:
    """Did the diagnosis name what was broken (or, unbroken, find the stack healthy)? And
    what it named."""
    root = report.diagnosis.root_cause
    got = root.failure_id if root else None
    if break_id is None:
        errors = [p.id for p in report.probes if str(p.status) == "error"]
        ok = report.diagnosis.status != "fail" and not errors
        return ok, "healthy" if ok else f"expected a healthy stack, got {got or 'probe errors: ' + ', '.join(errors)}"
    _, scenario = find(break_id, stack)
    return got == scenario.id, got or "no root cause"  # type: ignore[union-attr]


def loopback_only(cfg: RunConfig) -> None:
    """The self-test never dials anything but loopback."""
    if cfg.host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigError(f"selftest must use loopback, got host {cfg.host}")
