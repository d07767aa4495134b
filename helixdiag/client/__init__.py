"""The reference guest client: a stand-in for vsockenc (request mode) and for the scanout
subscriber, desktop-bridge (scanout mode), that validates every reply and names what is wrong.

A library first: `exchange(options) -> ExchangeResult`. The `send` command renders the
result; the `stream` probes reuse it so a probe and a manual `send` judge a host alike.

    result.py      what an exchange is asked (ExchangeOptions) and found (ExchangeResult)
    connection.py  a connection with bounded waits and its conversation; PING
    checker.py     every FRAME_RESPONSE judged (framing, SPS/PPS, decoding, the picture)
    request.py     request mode, like vsockenc
    scanout.py     scanout mode, like desktop-bridge
"""

from __future__ import annotations

import time
from collections.abc import Callable

from helixdiag.client.connection import Connection, PingResult, Stop, ping
from helixdiag.client.request import SLOW_FRAME_MS, run_request
from helixdiag.client.result import (
    MIN_PSNR_DB,
    ExchangeOptions,
    ExchangeResult,
    Judge,
    ScanoutFigures,
)
from helixdiag.client.scanout import run_scanout

__all__ = ["MIN_PSNR_DB", "SLOW_FRAME_MS", "Connection", "ExchangeOptions", "ExchangeResult", "PingResult",
           "ScanoutFigures", "exchange", "ping"]


def exchange(opts: ExchangeOptions,
             judge: Callable[[ExchangeResult, ExchangeOptions], Judge] | None = None) -> ExchangeResult:
    """Connect, run the exchange in the chosen mode, validate everything; never raises
    for what the peer does — that becomes findings. Raises NetError only on connect.

    `judge` makes what looks at each FRAME_RESPONSE (default: the StreamChecker, which
    decodes with PyAV). The guest agent passes one that records the replies instead, and
    the host judges them (helixdiag.agent.judge)."""
    result = ExchangeResult(str(opts.endpoint), opts.mode)
    conn = Connection(opts.endpoint, opts.connect_timeout)
    if judge is None:
        from helixdiag.client.checker import StreamChecker  # host only: numpy and PyAV

        judge = StreamChecker
    checker = judge(result, opts)
    started = time.monotonic()
    try:
        if opts.mode == "scanout":
            run_scanout(conn, opts, result, checker)
        else:
            run_request(conn, opts, result, checker)
    except Stop:
        pass
    finally:
        result.elapsed_s = time.monotonic() - started
        result.bytes_received = conn.bytes_in
        conn.close()
        checker.finish()
    return result
