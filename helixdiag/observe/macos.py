"""macOS facts: lsof for listeners and socket holders (psutil.net_connections needs root
there), otool for a binary's dylibs."""

from __future__ import annotations

import os
from collections.abc import Sequence

from helixdiag.observe import parsers
from helixdiag.observe.backend import lsof, lsof_unix_holders
from helixdiag.observe.processes import Listener, ProcInfo
from helixdiag.observe.psutil_procs import PsutilBackend


class MacBackend(PsutilBackend):
    name = "macos"
    unsupported: dict[str, str] = {}
    hardware_encoder = "videotoolbox"

    def tcp_listeners(self) -> tuple[list[Listener], str | None]:
        result = self.run([lsof(), "-nP", "-iTCP", "-sTCP:LISTEN", "-F", "pcfnPtT"])
        # lsof exits 1 when it finds nothing: only an error or a timeout leaves us not knowing.
        if result.error or (result.returncode not in (0, 1)):
            return [], f"lsof failed: {result.error or result.stderr.strip()[:200] or f'exit {result.returncode}'}"
        listeners = [
            Listener(e.pid, e.command, f"{e.local_address}:{e.local_port}", e.local_port, True, "lsof")
            for e in parsers.parse_lsof_fields(result.stdout) if e.local_port is not None
        ]
        # Without root, lsof skips other users' processes (a root-owned socat, say).
        partial = None if os.geteuid() == 0 else "lsof without sudo lists only this user's processes"
        return listeners, partial

    def socket_holders(self, path: str, candidates: Sequence[ProcInfo]) -> list[Listener]:
        # macOS lsof matches a socket argument only by the exact name the process bound
        # (darwin/dsock.c): `lsof /abs/path` misses QEMU's relative `helix-frame-export.sock`
        # and /tmp vs /private/tmp. So list the processes' Unix sockets and match each bound
        # name against `path`, resolved against that process's working directory.
        return lsof_unix_holders(self, path, candidates)

    def dylibs(self, binary: str) -> tuple[parsers.OtoolDeps | None, str | None]:
        # Without the Command Line Tools, /usr/bin/otool opens an install dialog: ask first.
        if not self.run(["xcode-select", "-p"], timeout=5).ok:
            return None, "otool needs the Xcode Command Line Tools (`xcode-select --install`)"
        result = self.run(["otool", "-L", binary])
        if result.error or result.returncode:
            return None, f"otool -L failed: {result.error or result.stderr.strip()[:200]}"
        try:
            return parsers.parse_otool_L(result.stdout), None
        except parsers.ParseError as exc:
            return None, f"otool -L printed something unexpected: {exc}"


