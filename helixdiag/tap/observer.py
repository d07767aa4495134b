"""All tapped connections seen together: a `ConnectionView` each, the capture, and the
records in the order they happened. Sans-I/O like the view: the live relay drives it from
its observer thread, `--read` from a capture file (`replay`), with the same calls.
"""

from __future__ import annotations

from collections.abc import Callable

from helixdiag.tap.pcap import CaptureWriter, stand_in
from helixdiag.tap.view import GUEST, HOST, ConnectionView, Record

Emit = Callable[[Record], None]
TICK_S = 0.25  # how often replies that never come are looked for (live and in a replay alike)


class Observer:
    def __init__(self, emit: Emit, *, reply_timeout: float = 3.0, capture: CaptureWriter | None = None) -> None:
        self.emit = emit
        self.reply_timeout = reply_timeout
        self.capture = capture
        self.views: dict[int, ConnectionView] = {}
        self.summaries: list[dict] = []
        self.last_ts = 0.0

    def opened(self, conn: int, guest: str, host: str, ts: float, *,
               guest_addr: tuple[str, int] | None = None, host_addr: tuple[str, int] | None = None) -> None:
        self.last_ts = ts
        self.views[conn] = ConnectionView(conn, guest, host, ts, reply_timeout=self.reply_timeout)
        self.emit(Record("open", ts, conn, text=f"guest {guest} → host {host}", fields={"guest": guest, "host": host}))
        if self.capture is not None:
            self._captured(conn, ts, self.capture.opened(
                conn, stand_in(guest_addr, conn, "guest"), stand_in(host_addr, conn, "host"), ts, (guest, host)))

    def connect_failed(self, conn: int, guest: str, host: str, ts: float, reason: str) -> None:
        rec = Record("note", ts, conn, text=f"guest {guest} connected, but the host {host} cannot be reached "
                                            f"({reason}): the guest's connection is closed")
        rec.flag("stream-connect-failed", f"cannot connect to {host}: {reason}")
        self.emit(rec)

    def data(self, conn: int, sender: str, chunk: bytes, ts: float) -> None:
        self.last_ts = ts
        view = self.views.get(conn)
        if view is None:
            return
        if self.capture is not None:
            self._captured(conn, ts, self.capture.data(conn, sender, chunk, ts))
        for rec in view.data(sender, chunk, ts):
            self.emit(rec)

    def unobserved(self, conn: int, sender: str, nbytes: int, ts: float) -> None:
        """Bytes forwarded that the view never saw (the observer fell too far behind)."""
        view = self.views.get(conn)
        if view is None:
            return
        if not view.unobserved:
            self.emit(Record("note", ts, conn, sender=sender,
                             text="the tap's observer fell behind: this connection is still relayed, but no "
                                  "longer decoded or recorded"))
        view.unobserved += nbytes

    def closed(self, conn: int, sender: str, ts: float, *, by_tap: bool = False) -> None:
        self.last_ts = max(self.last_ts, ts)
        view = self.views.get(conn)
        if view is None:
            return
        if self.capture is not None:
            self._captured(conn, ts, self.capture.closed(conn, sender, ts))
        for rec in view.closed(sender, ts, by_tap=by_tap):
            self.emit(rec)
        if view.sides[GUEST].closed and view.sides[HOST].closed:
            self._summarise(view, ts)

    def note(self, conn: int, text: str, ts: float) -> None:
        self.emit(Record("note", ts, conn, text=text))

    def tick(self, ts: float) -> None:
        for view in list(self.views.values()):
            for rec in view.tick(ts):
                self.emit(rec)

    def finish(self, ts: float | None = None) -> list[dict]:
        """The end of the run: every connection still open gets its summary."""
        ts = self.last_ts if ts is None else ts
        for view in list(self.views.values()):
            self._summarise(view, ts)
        return self.summaries

    def _summarise(self, view: ConnectionView, ts: float) -> None:
        self.views.pop(view.conn, None)
        summary = view.summary(ts)
        self.summaries.append(summary)
        self.emit(Record("summary", ts, view.conn, fields=summary))

    def _captured(self, conn: int, ts: float, stopped: bool) -> None:
        if stopped and self.capture is not None:
            self.note(conn, f"capture stopped at --pcap-limit ({self.capture.limit / 1e6:g} MB, "
                            f"{self.capture.packets} packets in {self.capture.path}); the log goes on", ts)
