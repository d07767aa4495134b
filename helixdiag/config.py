"""The options of `run` (SPEC.md §3): flag > HELIXDIAG_<NAME> env > profile > default.

Each resolved value remembers where it came from (`sources`), because "the guest dials
15937 (from --port) but QEMU listens on 41937 (from its helix-port=)" is the evidence
a port mismatch needs.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from helixdiag.errors import ConfigError

UTM_GROUP_CONTAINER = "~/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM"
SOCKET_NAME = "helix-frame-export.sock"
DEFAULT_GUEST_HOST = "10.0.2.2"  # QEMU user networking's host address, seen from the guest
KNOWN_PORTS = (41937, 15937, 5900)  # the Mac app, the element default, the socat era

CHOICES = {
    "side": ("auto", "host", "guest", "both"),
    "topology": ("auto", "socat", "tcp"),
    "mode": ("auto", "request", "scanout"),
}


@dataclass
class RunConfig:
    side: str = "auto"
    topology: str = "auto"
    mode: str = "auto"
    host: str = DEFAULT_GUEST_HOST
    port: int | None = None
    socket: str | None = None
    qemu_log: str | None = None
    gst_log: str | None = None
    pipeline: str | None = None
    pipewire_node: str | None = None
    timeout: float = 2.0
    frames: int = 10  # frames in the stream probes' exchange
    size: str = "640x360"  # picture size of that exchange
    deadline: float = 30.0  # the whole run, seconds
    sources: dict[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def asked_for(self, name: str) -> bool:
        return self.source(name) != "default"

    @property
    def size_tuple(self) -> tuple[int, int]:
        w, _, h = self.size.partition("x")
        return int(w), int(h)

    def public(self) -> dict[str, Any]:
        """The config block of the report."""
        return {
            "side": self.side, "topology": self.topology, "mode": self.mode, "host": self.host,
            "port": self.port, "socket": self.socket, "qemu_log": self.qemu_log,
            "gst_log": self.gst_log, "pipeline": self.pipeline, "pipewire_node": self.pipewire_node,
            "timeout": self.timeout, "profile": self.sources.get("profile"),
            "sources": dict(self.sources),
        }


_FIELDS = {f.name: f for f in fields(RunConfig) if f.name != "sources"}
_TYPES: dict[str, type] = {
    "side": str, "topology": str, "mode": str, "host": str, "port": int, "socket": str,
    "qemu_log": str, "gst_log": str, "pipeline": str, "pipewire_node": str, "timeout": float,
    "frames": int, "size": str, "deadline": float,
}


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _TYPES[name]
    try:
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {name} must be {kind.__name__}, got {value!r}") from None
    _validate(name, value, origin)
    return value


def _validate(name: str, value: Any, origin: str) -> None:
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"{origin}: {name} must be one of {', '.join(CHOICES[name])}, got {value!r}")
    if name == "port" and not 0 < value < 65536:
        raise ConfigError(f"{origin}: port must be 1-65535, got {value}")
    if name in ("timeout", "deadline") and not 0 < value <= 3600:
        raise ConfigError(f"{origin}: {name} must be between 0 and 3600 seconds, got {value}")
    if name == "frames" and not 1 <= value <= 10_000:
        raise ConfigError(f"{origin}: frames must be 1-10000, got {value}")
    if isinstance(value, str) and "\0" in value:
        # Paths with a NUL make every os/socket call raise ValueError in the probes.
        raise ConfigError(f"{origin}: {name} must not contain a NUL character, got {value!r}")
    if name == "size":
        w, sep, h = value.partition("x")
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not (sep and _is_number(w) and _is_number(h) and 0 < int(w) <= 8192 and 0 < int(h) <= 8192):
            raise ConfigError(f"{origin}: size must be WIDTHxHEIGHT, got {value!r}")


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def profile_dirs() -> list[Path]:
    """Installed profiles first (wheel), then the source tree's checks/."""
    dirs = []
    try:
        installed = importlib.resources.files("helixdiag") / "_checks"
        if installed.is_dir():
            dirs.append(Path(str(installed)))
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    dirs.append(Path(__file__).resolve().parent.parent / "checks")
    return dirs


def available_profiles() -> list[str]:
    names = set()
    for d in profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str) -> tuple[dict[str, Any], str]:
    """A profile by name (checks/NAME.toml) or path: its values and where it was read."""
    candidates = [Path(name_or_path)] if name_or_path.endswith(".toml") or os.sep in name_or_path else []
    candidates += [d / f"{name_or_path}.toml" for d in profile_dirs()]
    for path in candidates:
        if path.is_file():
            break
    else:
        known = ", ".join(available_profiles()) or "none"
        raise ConfigError(f"no profile {name_or_path!r} (known: {known})")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read profile {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays/tables recursively
        raise ConfigError(f"profile {path} nests arrays or tables too deeply") from None
    values = data.get("run", data)
    if not isinstance(values, dict):
        raise ConfigError(f"profile {path}: [run] must be a table")
    unknown = sorted(set(values) - set(_FIELDS) - {"description"})
    if unknown:
        raise ConfigError(f"profile {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    return {k: v for k, v in values.items() if k != "description"}, str(path)


def resolve(flags: dict[str, Any], env: dict[str, str] | None = None) -> RunConfig:
    """Merge flags (None = not given), HELIXDIAG_* variables, the profile and defaults."""
    env = os.environ if env is None else env
    cfg = RunConfig()
    sources: dict[str, str] = {}
    profile_name = flags.get("profile") or env.get("HELIXDIAG_PROFILE")
    profile_values: dict[str, Any] = {}
    if profile_name:
        profile_values, profile_path = load_profile(profile_name)
        sources["profile"] = profile_path
    for name in _FIELDS:
        env_name = f"HELIXDIAG_{name.upper()}"
        if flags.get(name) is not None:
            value, origin = flags[name], f"--{name.replace('_', '-')}"
        elif env.get(env_name, "") != "":
            value, origin = env[env_name], f"${env_name}"
        elif name in profile_values:
            value, origin = profile_values[name], f"profile {profile_name}"
        else:
            continue
        setattr(cfg, name, _coerce(name, value, origin))
        sources[name] = origin
    cfg.sources = sources
    _check_given_files(cfg)
    _apply_platform_defaults(cfg)
    return cfg


def _check_given_files(cfg: RunConfig) -> None:
    """A log the user named: a directory, a missing directory or an unreadable file is a
    mistake to say now (exit 2). A missing file in a directory that exists is evidence
    (QEMU may never have started), which the log probes report as a warning."""
    for name in ("qemu_log", "gst_log"):
        path = getattr(cfg, name)
        if path is None:
            continue
        flag = cfg.source(name)
        if os.path.isdir(path):
            raise ConfigError(f"{flag}: {path} is a directory, not a log file")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ConfigError(f"{flag}: no such directory {parent} (for {path})")
        if os.path.exists(path) and not os.access(path, os.R_OK):
            raise ConfigError(f"{flag}: {path} is not readable")


def _apply_platform_defaults(cfg: RunConfig) -> None:
    """What a Mac user needs without typing it: UTM's socket and log paths."""
    if sys.platform == "darwin":
        container = Path(UTM_GROUP_CONTAINER).expanduser()
        if cfg.socket is None and (container / SOCKET_NAME).exists():
            cfg.socket = str(container / SOCKET_NAME)
            cfg.sources["socket"] = "UTM default"
        if cfg.qemu_log is None:
            cfg.qemu_log = str(container / "helix-debug.log")
            cfg.sources["qemu_log"] = "UTM default"
    if cfg.side == "both" and "host" not in cfg.sources:
        # Both sides on one machine: the "guest" reaches the host over loopback.
        cfg.host = "127.0.0.1"
        cfg.sources["host"] = "--side both (loopback)"
    if cfg.side == "auto":
        detected, why = detect_side()
        cfg.side = detected
        cfg.sources["side"] = f"auto: {why}"


def detect_side() -> tuple[str, str]:
    """guest inside a QEMU/UTM guest (or a Helix container in one), else host."""
    if sys.platform == "darwin":
        return "host", "macOS"
    for var in ("HELIX_VIDEO_MODE", "HELIX_FRAME_EXPORT_PORT"):
        if os.environ.get(var):
            return "guest", f"${var} is set (a Helix guest/container)"
    vendor = _read("/sys/class/dmi/id/sys_vendor") + " " + _read("/sys/class/dmi/id/product_name")
    arch = os.uname().machine
    if arch in ("aarch64", "arm64") and ("QEMU" in vendor or "UTM" in vendor or "Apple" in vendor):
        return "guest", f"{arch} VM ({vendor.strip()})"
    return "host", "not inside an arm64 QEMU/UTM guest"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
