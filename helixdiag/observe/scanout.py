"""The scanout path's facts inside the guest (the VM or a desktop container): the virtual
connectors in sysfs, whether the drm-manager's socket is a file bind mount, the manager's
environment file, a process's environment, the desktop's scanout-id file.

Standard library only (a guest agent can carry it), read-only, and every read tolerates
what a container hides: a missing or unreadable file is None, never an exception.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

SYSFS_DRM = "/sys/class/drm"
MOUNTINFO = "/proc/self/mountinfo"
MANAGER_ENV_FILE = "/etc/helix-drm-manager.env"
SCANOUT_ID_FILE = "helix-scanout-id"  # in the desktop's $XDG_RUNTIME_DIR, written by the launcher
DEFAULT_RUNTIME_DIR = "/run/user/1000"  # what the launcher uses when XDG_RUNTIME_DIR is unset
_CONNECTOR = re.compile(r"^(card\d+)-Virtual-(\d+)$")
MAX_READ = 1 << 16


@dataclass(frozen=True)
class Connector:
    """One virtio-gpu connector: Virtual-N shows scanout N-1 (Virtual-1 is the VM's console)."""

    card: str
    number: int  # the N of Virtual-N
    status: str | None  # connected / disconnected
    enabled: str | None  # enabled / disabled: is a CRTC driving it (a desktop drawing)?
    modes: int  # how many modes the connector lists

    @property
    def name(self) -> str:
        return f"Virtual-{self.number}"

    @property
    def scanout_id(self) -> int:
        return self.number - 1

    def to_dict(self) -> dict[str, object]:
        return {"connector": self.name, "card": self.card, "scanout_id": self.scanout_id,
                "status": self.status, "enabled": self.enabled, "modes": self.modes}


@dataclass(frozen=True)
class MountEntry:
    """A line of /proc/self/mountinfo whose mount point is the path asked about."""

    mount_point: str
    root: str  # the path inside the source filesystem
    fstype: str
    source: str


def read_text(path: str, limit: int = MAX_READ) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except (OSError, ValueError):
        return None


def connectors(root: str = SYSFS_DRM) -> list[Connector]:
    """The card*-Virtual-N entries under `root`, in connector order (empty: not a virtio-gpu
    guest, or sysfs not visible)."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = []
    for name in names:
        m = _CONNECTOR.match(name)
        if not m:
            continue
        base = os.path.join(root, name)
        modes = read_text(os.path.join(base, "modes")) or ""
        found.append(Connector(m.group(1), int(m.group(2)), _first_line(os.path.join(base, "status")),
                               _first_line(os.path.join(base, "enabled")),
                               sum(1 for line in modes.splitlines() if line.strip())))
    return sorted(found, key=lambda c: (c.card, c.number))


def _first_line(path: str) -> str | None:
    text = read_text(path, 256)
    return text.strip().splitlines()[0] if text and text.strip() else None


def mount_at(path: str, mountinfo: str | None = None) -> MountEntry | None:
    """The mount whose mount point is `path` itself (the last one wins, as the kernel stacks
    them), from /proc/self/mountinfo or the text given. A socket that is its own mount point
    was bind-mounted as a file: it keeps the inode of the day it was mounted."""
    text = read_text(MOUNTINFO, 1 << 22) if mountinfo is None else mountinfo
    if not text:
        return None
    target = os.path.normpath(path)
    found = None
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        if len(fields) < dash + 3 or _unescape(fields[4]) != target:
            continue
        found = MountEntry(target, _unescape(fields[3]), fields[dash + 1], _unescape(fields[dash + 2]))
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 …)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def env_file(path: str = MANAGER_ENV_FILE) -> dict[str, str] | None:
    """KEY=VALUE lines (systemd EnvironmentFile syntax: comments, optional quotes)."""
    text = read_text(path)
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        values[key] = value
    return values


def process_environ(pid: int) -> dict[str, str] | None:
    """A process's environment from /proc (None: gone, or another user's without root)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read(1 << 20)
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def scanout_id_file(runtime_dir: str | None) -> tuple[str, int | None, str | None]:
    """The launcher's scanout-id file in `runtime_dir`: (path, id, problem). The id is a
    decimal number without a newline; a missing file is (path, None, None)."""
    path = os.path.join(runtime_dir or DEFAULT_RUNTIME_DIR, SCANOUT_ID_FILE)
    text = read_text(path, 64)
    if text is None:
        return path, None, None
    value = text.strip()
    if not value.isdigit():
        return path, None, f"{path} holds {value[:20]!r}, not a scanout id"
    return path, int(value), None
