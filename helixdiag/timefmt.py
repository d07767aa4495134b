"""The one way a time is written in reports, evidence and logs: ISO 8601, UTC."""

from __future__ import annotations

import time


def iso_time(epoch: float | None) -> str | None:
    """`2026-12-04T17:33:53Z` for an epoch time; None stays None."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
