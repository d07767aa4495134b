"""The drm-manager stand-in, driven by a client written here from the byte layouts (struct and
recvmsg, not helixdiag's lease client): a real fd across SCM_RIGHTS, ENABLE_SCANOUT reaching a
real `serve`, release on disconnect followed by DISABLE, the unknown-command reply, its faults."""

from __future__ import annotations

import array
import os
import socket
import struct
import time

import pytest
from conftest import endpoint_of, running_server

from helixdiag.drm_client import LeaseError, release_scanout, request_lease
from helixdiag.errors import ConfigError
from helixdiag.faults import Fault
from helixdiag.server.drm_manager import DrmManager, ManagerConfig
from helixdiag.server.generations import GENERATIONS

pytestmark = pytest.mark.timeout(30)

REQUEST = struct.Struct("<BII")  # u8 cmd, u32 width, u32 height
REPLY = struct.Struct("<BI64s")  # u8 status, u32 scanout_id, char connector[64]


def manager(server, short_tmp, lines=None, **kw) -> DrmManager:
    ep = endpoint_of(server) if server is not None else None
    cfg = ManagerConfig(socket=str(short_tmp / "drm.sock"), qemu=(ep.host, ep.port) if ep else ("127.0.0.1", 9),
                        settle=0.05, disable_wait=0.3, **kw)
    return DrmManager(cfg, log=(lines.append if lines is not None else lambda line: None))


def ask(path: str, cmd: int, width: int = 0, height: int = 0) -> tuple[socket.socket, bytes, list[int]]:
    """One request; the reply and any fds that came with it (the connection stays open)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    sock.sendall(REQUEST.pack(cmd, width, height))
    fds = array.array("i")
    data, ancdata, _, _ = sock.recvmsg(REPLY.size, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancdata:
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    while len(data) < REPLY.size:
        more = sock.recv(REPLY.size - len(data))
        if not more:
            break
        data += more
    return sock, data, list(fds)


def wait_for(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def h4(**kw):
    return running_server(generation=GENERATIONS["h4"], size=(160, 96), idle_timeout=None, **kw)


def test_a_lease_is_a_real_fd_over_scm_rights_and_its_end_disables_the_scanout(short_tmp):
    lines: list[str] = []
    with h4() as server, manager(server, short_tmp, lines) as mgr:
        assert os.stat(mgr.config.socket).st_mode & 0o777 == 0o777
        sock, data, fds = ask(mgr.config.socket, 1, 320, 240)
        assert len(data) == 69 and REPLY.unpack(data) == (0, 1, b"Virtual-2".ljust(64, b"\0"))
        assert len(fds) == 1
        os.lseek(fds[0], 0, os.SEEK_SET)
        assert b"scanout 1, connector Virtual-2" in os.read(fds[0], 200)  # a real, readable fd
        os.close(fds[0])
        assert server.enabled(1)  # ENABLE_SCANOUT reached serve before the reply
        sock.close()  # the desktop exits: the lease is released, DISABLE goes to serve
        assert wait_for(lambda: not server.enabled(1))
        assert wait_for(lambda: mgr.released == [1])
        assert mgr.pool == [*range(2, 16), 1]  # FIFO: a released id goes to the end
    messages = [line.split('msg="')[1].split('"')[0] for line in lines]
    assert messages.index("lease FD sent to client") < messages.index("lease client disconnected, releasing scanout")
    assert "read disable response failed" in messages  # no host answers DISABLE: the wait runs out


def test_serve_answers_disable_the_real_hosts_do_not(short_tmp):
    lines: list[str] = []
    with running_server(size=(160, 96)) as server, manager(server, short_tmp, lines) as mgr:
        with request_lease(mgr.config.socket, 160, 96) as lease:
            assert (lease.scanout_id, lease.connector) == (1, "Virtual-2")
        assert wait_for(lambda: mgr.released == [1])
    assert any('msg="QEMU confirmed scanout disabled"' in line for line in lines), lines


def test_frames_flow_to_a_subscriber_of_the_leased_scanout_only_while_it_is_leased(short_tmp):
    from test_generations import Raw, subscribe

    with h4(fps=30) as server, manager(server, short_tmp) as mgr, Raw(server) as sub:
        sub.send(subscribe(1))
        assert sub.read()[0] == 0x31
        assert sub.read(timeout=0.3) is None  # not leased yet: nothing drawn
        lease = request_lease(mgr.config.socket, 160, 96)
        assert len(sub.frames(3)) == 3
        lease.release()
        assert wait_for(lambda: not server.enabled(1))


def test_the_unknown_command_reply_is_the_liveness_probe(short_tmp):
    with manager(None, short_tmp) as mgr:
        sock, data, fds = ask(mgr.config.socket, 0)
        sock.close()
    assert fds == []
    assert data == bytes([1, 0, 0, 0, 0]) + b"unknown command".ljust(64, b"\0")


def test_release_by_a_stray_byte_and_by_command(short_tmp):
    with h4() as server, manager(server, short_tmp) as mgr:
        first = request_lease(mgr.config.socket)
        first.sock.sendall(b"x")  # any byte ends the lease, as EOF does (inferred; on by default)
        assert wait_for(lambda: mgr.released == [1])
        second = request_lease(mgr.config.socket)
        assert second.scanout_id == 2
        release_scanout(mgr.config.socket, 2)  # from another connection: no reply, no check of who
        assert wait_for(lambda: mgr.released == [1, 2]) and not server.enabled(2)
        first.release()
        second.release()
    with h4() as server, manager(server, short_tmp, release_on_byte=False) as mgr:
        lease = request_lease(mgr.config.socket)
        lease.sock.sendall(b"x")
        time.sleep(0.3)
        assert mgr.released == [] and server.enabled(1)
        lease.release()
        assert wait_for(lambda: mgr.released == [1])


def test_the_pool_is_sized_from_max_outputs(short_tmp):
    with h4(max_outputs=3) as server, manager(server, short_tmp, outputs=3) as mgr:
        leases = [request_lease(mgr.config.socket) for _ in range(2)]
        assert [lease.scanout_id for lease in leases] == [1, 2]
        with pytest.raises(LeaseError, match=r"^lease request failed: no scanouts available \(all 2 in use\)$"):
            request_lease(mgr.config.socket)
        for lease in leases:
            lease.release()


def test_faults(short_tmp):
    with h4() as server, manager(server, short_tmp, fault=Fault("pool-empty")) as mgr:
        _, data, fds = ask(mgr.config.socket, 1)
        assert REPLY.unpack(data)[:2] == (1, 0) and fds == []
        assert REPLY.unpack(data)[2].rstrip(b"\0") == b"no scanouts available (all 15 in use)"
    with h4() as server, manager(server, short_tmp, fault=Fault("wrong-port")) as mgr:
        _, data, fds = ask(mgr.config.socket, 1)
        status, scanout, text = REPLY.unpack(data)
        assert (status, scanout, fds) == (1, 0, [])
        assert text.startswith(b"QEMU enable failed: connect to QEMU 127.0.0.1:")
        assert len(text.rstrip(b"\0")) == 64  # cut to 64 bytes, no NUL: the real daemon's truncation
        assert not server.enabled(1)
        assert mgr.pool[-1] == 1 and len(mgr.pool) == 15  # the id went back (to the end)
    lines: list[str] = []
    mgr = manager(None, short_tmp, lines, fault=Fault("no-master"))
    with pytest.raises(ConfigError, match="DRM_IOCTL_SET_MASTER"):
        mgr.start()
    assert not os.path.exists(mgr.config.socket)
    assert 'msg="failed to create DRM manager"' in lines[-1]
