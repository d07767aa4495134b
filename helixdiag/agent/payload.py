"""The guest agent as it travels: a zip of the modules the guest side needs (closure.py)
and the frames it sends, and a short Python program that unpacks it into a temporary
directory, runs it and removes the directory again — nothing is left on the guest.

The program is fed to `python3 -I -` through the `--guest` prefix (remote.py); base64 lines
stay short, as a pty's line discipline wants.
"""

from __future__ import annotations

import base64
import io
import json
import textwrap
import zipfile
from functools import lru_cache
from typing import Any

from helixdiag.agent import closure
from helixdiag.agent.recorder import frame_name
from helixdiag.probes.guest_tcp import PING_FRAME_SIZE
from helixdiag.protocol import PixelFormat

MIN_PYTHON = (3, 8)
LINE = 76  # base64 characters per line

BOOTSTRAP = """\
import base64, json, os, shutil, sys, tempfile
if sys.version_info < {min_python}:
    print("HXD-OLD-PYTHON %d.%d" % sys.version_info[:2])
    sys.exit(0)
PAYLOAD = '''
{payload}
'''
SPEC = '''
{spec}
'''
home = tempfile.mkdtemp(prefix="helixdiag-agent-")
try:
    path = os.path.join(home, "helixdiag-agent.zip")
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(PAYLOAD))
    sys.path.insert(0, path)
    from helixdiag.agent.guest import main
    code = main(json.loads(base64.b64decode(SPEC).decode("utf-8")))
finally:
    shutil.rmtree(home, ignore_errors=True)
sys.exit(code)
"""


def _frames() -> dict[str, bytes]:
    """The frames the guest sends, rendered here (numpy) exactly as `send` renders them."""
    from helixdiag.frames import SyntheticSource

    width, height = PING_FRAME_SIZE
    return {frame_name(width, height, PixelFormat.NV12, 0): bytes(SyntheticSource(width, height, PixelFormat.NV12).frame(0))}


@lru_cache(maxsize=1)
def build_zip() -> bytes:
    """The zip: every module the guest side loads, and the frames; built once per process."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for module in closure.agent_modules():
            path = closure.source_file(module)
            arcname = path.relative_to(closure.PACKAGE_DIR.parent).as_posix()  # type: ignore[union-attr]
            zf.writestr(_entry(arcname), path.read_bytes())  # type: ignore[union-attr]
        for name, data in _frames().items():
            zf.writestr(_entry(f"helixdiag/agent/{name}"), data)
    return buffer.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same bytes every build
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def program(options: dict[str, str], names: list[str], layers: list[str] | None) -> str:
    """The Python program for `python3 -I -` on the guest."""
    spec: dict[str, Any] = {"modules": closure.guest_probe_modules(), "options": options,
                            "names": names, "layers": layers}
    return BOOTSTRAP.format(min_python=MIN_PYTHON, payload=_lines(build_zip()),
                            spec=_lines(json.dumps(spec).encode("utf-8")))


def _lines(data: bytes) -> str:
    return "\n".join(textwrap.wrap(base64.b64encode(data).decode("ascii"), LINE)) or ""
