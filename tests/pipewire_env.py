"""pytest fixtures over helixdiag.selftest.pipewire: a private, real PipeWire per test module
and a fresh live video source per test. They fail (never skip) when the stack cannot start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helixdiag.selftest.pipewire import (  # noqa: F401 - re-exported for the tests
    PipeWireStack,
    PipeWireUnavailable,
    Source,
    private_pipewire,
)

# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pipewire_stack() -> Iterator[PipeWireStack]:
    """One private stack per test module. Fails (never skips) when it cannot start."""
    try:
        with private_pipewire() as stack:
            yield stack
    except PipeWireUnavailable as exc:
        pytest.fail(f"cannot start a private PipeWire stack: {exc}")


@pytest.fixture
def pipewire_source(pipewire_stack: PipeWireStack) -> Iterator[Source]:
    """A fresh live Video/Source node for one test (one producer per consumer, §2.3)."""
    try:
        src = pipewire_stack.start_source()
    except PipeWireUnavailable as exc:
        pytest.fail(f"cannot start a PipeWire video source: {exc}")
    try:
        yield src
    finally:
        pipewire_stack.stop_source(src)
