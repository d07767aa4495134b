"""A client connection with bounded waits, the conversation it keeps, and PING."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from helixdiag import net, protocol
from helixdiag.protocol import NEED_DATA, RemoteProtocolError
from helixdiag.protocol.conversation import REPLY, Conversation, Event


class Stop(Exception):
    """The exchange cannot go on (no reply, closed, broken framing)."""


class Connection:
    """A client socket plus an HXFR decoder, with bounded waits for one message. Every
    message sent and received goes through the connection's `Conversation`, which says
    what each received message is (a reply, a pushed frame, an answer nobody asked for)."""

    def __init__(self, endpoint: net.Endpoint, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self.sock = net.connect(endpoint, connect_timeout)
        self.decoder = protocol.Decoder(accept=protocol.HOST_TO_GUEST)
        self.conversation = Conversation()
        self.bytes_in = 0

    def send(self, msg: protocol.Message, deadline: float) -> int:
        sent = net.send_parts(self.sock, protocol.encode_parts(msg), deadline)
        self.conversation.guest_sent(msg)
        return sent

    def receive(self, timeout: float) -> Event:
        """The next message and what it means; TimeoutError when nothing complete arrives in
        `timeout`, EOFError when the peer closes, RemoteProtocolError on broken framing."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.decoder.next_message()
            if msg is not NEED_DATA:
                return self.conversation.host_sent(msg)  # type: ignore[arg-type]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                n = self.sock.recv_into(self.decoder.buffer())
            except TimeoutError:
                raise TimeoutError from None
            except OSError as exc:
                raise EOFError(str(net.translate(exc, "read"))) from None
            if n == 0:
                raise EOFError("mid-message" if self.decoder.in_message else "at a message boundary")
            self.bytes_in += n
            self.decoder.commit(n)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass(frozen=True)
class PingResult:
    """What a PING got: `pong`, `silent` (nothing within the timeout), `closed` (EOF or a
    reset), `bad-magic` (not HXFR at all) or `wrong-answer` (HXFR, but not a PONG)."""

    outcome: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome == "pong"


def ping(endpoint: net.Endpoint, timeout: float) -> PingResult:
    """PING → PONG on a fresh connection. Raises NetError only when connecting fails."""
    conn = Connection(endpoint, timeout)
    try:
        conn.send(protocol.Ping(1), time.monotonic() + timeout)
        event = conn.receive(timeout)
    except TimeoutError:
        return PingResult("silent", f"no PONG within {timeout:g} s")
    except (EOFError, OSError) as exc:
        return PingResult("closed", f"connection closed ({exc})")
    except RemoteProtocolError as exc:
        outcome = "bad-magic" if exc.kind == "bad-magic" else "wrong-answer"
        return PingResult(outcome, f"answer breaks the protocol ({exc.kind}): {exc}")
    finally:
        conn.close()
    if event.kind == REPLY and isinstance(event.message, protocol.Pong):
        return PingResult("pong", "PONG")
    return PingResult("wrong-answer", f"answered {event.name} instead of PONG")

