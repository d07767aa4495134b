"""The relay: accept on one address, dial the other, forward every byte unchanged in both
directions, for any number of connections; hand a copy of each chunk to the observer.

Per connection two pump threads, one per direction: `recv_into` a buffer of the pump's pool →
lend it to the observer's queue → `sendall` it on; the observer gives the buffer back once it
has decoded and recorded it (reading into fresh memory instead costs a 1080p frame about a
millisecond of page faults). The observer (one thread for all connections) decodes,
judges and records on its own time; a pump never waits for it unless it is more than
`BACKLOG` bytes behind, and then at most a second before that connection is relayed
unobserved. Queuing before sending keeps the observer's order causal: a reply can only be
read after the request it answers was queued.

When one side ends its stream the other gets a FIN (shutdown) and `half_close` seconds to
finish, like socat's `-t`; a reset or a failed write closes both sides at once.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from helixdiag import net
from helixdiag.errors import ConfigError, UsageError
from helixdiag.observe.stale import OwnedSocket, listen_unix
from helixdiag.tap.observer import TICK_S, Observer
from helixdiag.tap.view import GUEST, HOST, OTHER

CHUNK = 1 << 20
SMALL = 64 << 10  # a chunk shorter than this is copied for the observer; a longer one is lent
POOL = 16  # read buffers kept per pump
BACKLOG = 64 << 20  # bytes the observer may lag behind before a pump waits for it
BACKLOG_WAIT_S = 1.0


def parse_address(text: str, *, listen: bool = False) -> net.Endpoint:
    """`tcp://HOST:PORT`, `unix:PATH` or `unix://PATH` (a listening TCP port may be 0: any free one)."""
    text = text.strip()
    if text.startswith("unix:") and not text.startswith("unix://"):
        text = "unix://" + text[len("unix:"):]
    if listen and text.startswith("tcp://"):
        host, port = net.parse_hostport(text[len("tcp://"):], allow_zero=True)
        return net.Endpoint("tcp", host=host, port=port)
    if not text.startswith(("tcp://", "unix://")):
        raise UsageError(f"expected tcp://HOST:PORT or unix:PATH, got {text!r}")
    return net.parse_endpoint(text)


@dataclass
class TapConfig:
    listen: net.Endpoint
    to: net.Endpoint
    connect_timeout: float = 3.0
    half_close: float = 1.0  # seconds the other direction gets after one side's FIN


class ObserverThread:
    """Runs an `Observer` on its own thread, fed through a queue of (call, args)."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self._items: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._pending = 0  # bytes queued
        self._done = False
        self._deadline: float | None = None
        self.dropped = 0
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name="tap-observer", daemon=True)
        self.thread.start()

    def call(self, name: str, *args, **kwargs) -> None:
        with self._cv:
            self._items.append((name, args, kwargs, 0, None))
            self._cv.notify()

    def data(self, conn: int, sender: str, chunk: bytes | memoryview, ts: float, *,
             release: Callable[[], None] | None = None, held: int = 0) -> bool:
        """Queue a chunk (`release` is called once the observer is done with a lent buffer of
        `held` bytes); False if the observer stayed more than BACKLOG behind for a second."""
        size = max(len(chunk), held)
        with self._cv:
            if self._pending > BACKLOG:
                self._cv.wait_for(lambda: self._pending <= BACKLOG or self._done, BACKLOG_WAIT_S)
                if self._pending > BACKLOG:
                    return False
            self._items.append(("data", (conn, sender, chunk, ts), {}, size, release))
            self._pending += size
            self._cv.notify()
        return True

    def stop(self, deadline: float) -> None:
        """Finish what is queued until `deadline`, then the summaries; bounded either way."""
        with self._cv:
            self._done = True
            self._deadline = deadline
            self._cv.notify_all()
        self.thread.join(max(0.0, deadline - time.monotonic()) + 0.3)

    def _run(self) -> None:
        last_tick = time.monotonic()
        while True:
            with self._cv:
                if not self._items and not self._done:
                    self._cv.wait(TICK_S)
                if self._done and (not self._items or time.monotonic() > (self._deadline or 0)):
                    self.dropped = sum(i[3] for i in self._items)  # (their buffers: to the collector)
                    self._items.clear()
                    break
                item = self._items.popleft() if self._items else None
                if item is not None and item[3]:
                    self._pending -= item[3]
                    self._cv.notify_all()
            if item is not None:
                name, args, kwargs, _, release = item
                try:
                    getattr(self.observer, name)(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - a bug in the view must never stop the relay
                    self.errors += 1
                    if self.errors <= 3:
                        self.observer.note(args[0] if args and isinstance(args[0], int) else 0,
                                           f"tap observer error (relaying goes on): {type(exc).__name__}: {exc}",
                                           time.time())
                finally:
                    if release is not None:
                        release()
            if time.monotonic() - last_tick >= TICK_S and not self._items:  # caught up: judge silences
                last_tick = time.monotonic()
                self.observer.tick(time.time())
        if self.dropped:
            self.observer.note(0, f"stopping: {self.dropped} relayed bytes were not decoded in time", time.time())
        self.observer.finish(time.time())


class _Connection:
    """One tapped connection: the guest's socket, the host's, two pumps."""

    def __init__(self, tap: Tap, conn: int, guest: socket.socket, guest_label: str,
                 guest_addr: tuple[str, int] | None) -> None:
        self.tap = tap
        self.conn = conn
        self.socks: dict[str, socket.socket] = {GUEST: guest}
        self.guest_label = guest_label
        self.guest_addr = guest_addr
        self.done = {GUEST: threading.Event(), HOST: threading.Event()}
        self.observed = True
        self._lock = threading.Lock()
        self._closed_once: set[str] = set()
        self._finished = False

    def start(self) -> None:
        tap = self.tap
        to = tap.config.to
        try:
            host = net.connect(to, tap.config.connect_timeout)
        except net.NetError as exc:
            tap.observer.call("connect_failed", self.conn, self.guest_label, str(to), time.time(),
                              str(exc).split(": ", 1)[-1])
            _close(self.socks[GUEST])
            tap._forget(self)
            return
        if tap.stopping.is_set():
            _close(host)
            _close(self.socks[GUEST])
            tap._forget(self)
            return
        self.socks[HOST] = host
        host_addr = to.address if to.kind == "tcp" else None
        tap.observer.call("opened", self.conn, self.guest_label, str(to), time.time(),
                          guest_addr=self.guest_addr, host_addr=host_addr)  # type: ignore[arg-type]
        threading.Thread(target=self._pump, args=(HOST,), name=f"tap-{self.conn}-host", daemon=True).start()
        self._pump(GUEST)

    def _pump(self, sender: str) -> None:
        src, dst = self.socks[sender], self.socks[OTHER[sender]]
        observer = self.tap.observer
        pool: collections.deque[bytearray] = collections.deque()

        def take() -> bytearray:
            try:
                return pool.pop()
            except IndexError:
                return bytearray(CHUNK)

        def give_back(buf: bytearray) -> Callable[[], None]:
            return lambda: pool.append(buf) if len(pool) < POOL else None

        buf = take()
        ended = "eof"
        while True:
            try:
                n = src.recv_into(buf)
            except OSError:
                ended = "reset"
                break
            if not n:
                break
            ts = time.time()
            chunk = memoryview(buf)[:n]
            lent = False
            if self.observed:
                if n < SMALL:
                    self.observed = observer.data(self.conn, sender, bytes(chunk), ts)
                else:
                    lent = self.observed = observer.data(self.conn, sender, chunk, ts, release=give_back(buf),
                                                         held=len(buf))
            if not self.observed:
                observer.call("unobserved", self.conn, sender, n, ts)
            try:
                dst.sendall(chunk)
            except OSError:
                ended = "write-failed"
                break
            if lent:
                buf = take()  # the observer has this one until it is done with it
        self._end(sender, ended)

    def _end(self, sender: str, ended: str) -> None:
        by_tap = self.tap.stopping.is_set()
        other = OTHER[sender]
        # Who ended: the sender (EOF, reset), or the receiver when writing to it failed.
        self._closed(other if ended == "write-failed" else sender, time.time(), by_tap)
        if ended == "eof" and not by_tap:
            with contextlib.suppress(OSError):
                self.socks[other].shutdown(socket.SHUT_WR)  # pass the FIN on
        else:
            self.shutdown()
        self.done[sender].set()
        if not self.done[other].wait(self.tap.config.half_close):
            self.shutdown()  # the other side did not finish in time: close it, like socat after -t
            self.done[other].wait(2.0)
        with self._lock:
            if self._finished or not (self.done[GUEST].is_set() and self.done[HOST].is_set()):
                return  # the other pump finishes the teardown
            self._finished = True
        now = time.time()
        for side in (GUEST, HOST):
            self._closed(side, now, by_tap)
        for sock in self.socks.values():
            _close(sock)
        self.tap._forget(self)

    def _closed(self, side: str, ts: float, by_tap: bool) -> None:
        with self._lock:
            if side in self._closed_once:
                return
            self._closed_once.add(side)
        self.tap.observer.call("closed", self.conn, side, ts, by_tap=by_tap)

    def shutdown(self) -> None:
        for sock in self.socks.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Tap:
    """`start()` binds and returns the listening endpoint; `stop()` ends everything, bounded."""

    def __init__(self, config: TapConfig, observer: Observer) -> None:
        self.config = config
        self.observer = ObserverThread(observer)
        self.stopping = threading.Event()
        self.endpoint: net.Endpoint | None = None
        self._listener: socket.socket | None = None
        self._unix_owned: OwnedSocket | None = None
        self._ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._acceptor: threading.Thread | None = None
        self.connections_total = 0

    def start(self) -> net.Endpoint:
        self._listener = self._listen(self.config.listen)
        self._acceptor = threading.Thread(target=self._accept_loop, name="tap-accept", daemon=True)
        self._acceptor.start()
        assert self.endpoint is not None
        return self.endpoint

    def stop(self, timeout: float = 0.8) -> None:
        """Close the listener and every connection, then let the observer finish (its
        summaries); returns within about `timeout` seconds whatever the peers do."""
        deadline = time.monotonic() + timeout
        self.stopping.set()
        if self._listener is not None:
            _close(self._listener)
        if self._unix_owned:
            self._unix_owned.remove()
            self._unix_owned = None
        with self._lock:
            connections = list(self._connections)
        for c in connections:
            c.shutdown()
        for c in connections:
            for event in c.done.values():
                event.wait(max(0.0, deadline - 0.3 - time.monotonic()))
        if self._acceptor is not None:
            self._acceptor.join(max(0.0, deadline - time.monotonic()))
        self.observer.stop(deadline)

    def wait(self, timeout: float | None = None) -> bool:
        return self.stopping.wait(timeout)

    # ------------------------------------------------------------------ listening
    def _listen(self, ep: net.Endpoint) -> socket.socket:
        if ep.kind == "unix":
            return self._listen_unix(ep.path)
        sock = socket.socket(ep.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ep.host, ep.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(str(net.translate(exc, f"listen on {ep}")),
                              hint="QEMU owns its port: listen on another one and point the guest at it "
                                   "(docs/tap.md)") from None
        sock.listen(64)
        host, port = sock.getsockname()[:2]
        self.endpoint = net.Endpoint("tcp", host=host, port=port)
        return sock

    def _listen_unix(self, path: str) -> socket.socket:
        sock, self._unix_owned = listen_unix(path, 64)
        self.endpoint = net.Endpoint("unix", path=path)
        return sock

    def _accept_loop(self) -> None:
        assert self._listener is not None
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        try:
            while not self.stopping.is_set():
                if not sel.select(timeout=0.2):
                    continue
                try:
                    sock, addr = self._listener.accept()
                except OSError:
                    continue
                self._admit(sock, addr)
        except (OSError, ValueError):  # the listener was closed under us: stopping
            pass
        finally:
            sel.close()

    def _admit(self, sock: socket.socket, addr: object) -> None:
        with contextlib.suppress(OSError):
            net.tune(sock)
        conn = next(self._ids)
        if isinstance(addr, tuple):
            host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
            label, guest_addr = f"tcp://{host}:{addr[1]}", (addr[0], addr[1])
        else:
            label, guest_addr = str(self.config.listen), None
        c = _Connection(self, conn, sock, label, guest_addr)
        with self._lock:
            self._connections.add(c)
            self.connections_total += 1
        threading.Thread(target=c.start, name=f"tap-{conn}-guest", daemon=True).start()

    def _forget(self, c: _Connection) -> None:
        with self._lock:
            self._connections.discard(c)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
