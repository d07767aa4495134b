"""The options of `run` (docs/run.md): flag > HELIXDIAG_<NAME> env > profile > default.

Each resolved value remembers where it came from (`sources`), because "the guest dials
15937 (from --port) but QEMU listens on 41937 (from its helix-port=)" is the evidence
a port mismatch needs.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from helixdiag.errors import ConfigError

UTM_GROUP_CONTAINER = "~/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM"
SOCKET_NAME = "helix-frame-export.sock"
DEFAULT_GUEST_HOST = "10.0.2.2"  # QEMU user networking's host address, seen from the guest
KNOWN_PORTS = (41937, 15937, 5900)  # the Mac app, the element default, the socat era
DEFAULT_DRM_SOCKET = "/run/helix-drm/drm.sock"
STDIN = "-"  # a log read from standard input
LOG_OPTIONS = ("qemu_log", "gst_log", "drm_log", "bridge_log")

CHOICES = {
    "side": ("auto", "host", "guest", "both"),
    "topology": ("auto", "socat", "tcp"),
    "mode": ("auto", "request", "scanout"),
    "guest_agent": ("auto", "builtin", "installed"),
}
MAX_SIDE = 8192  # a picture side, as vsockenc's caps allow


def option(default: Any, help: str, *, kind: type | str = str, metavar: str | None = None,
           choices: tuple[str, ...] | None = None, low: float | None = None, high: float | None = None,
           in_report: bool = True, to_guest: bool = False) -> Any:
    """One `run` option, declared once: its type and range (checked for flags, environment
    variables and profiles alike), its help, whether the report's config block shows it, and
    whether `run --guest` passes it on to the guest side. The command line, HELIXDIAG_<NAME>,
    the profile keys and the report all derive from these declarations."""
    return field(default=default, metadata={
        "option": True, "help": help, "kind": kind, "metavar": metavar, "choices": choices,
        "low": low, "high": high, "in_report": in_report, "to_guest": to_guest})


@dataclass
class RunConfig:
    side: str = option("auto", "auto = guest inside a QEMU/UTM guest, else host; both = everything here (CI).",
                       choices=CHOICES["side"])
    topology: str = option("auto", "socat = TCP → socat → Unix socket → QEMU; tcp = QEMU listens itself.",
                           choices=CHOICES["topology"])
    mode: str = option("auto", "request (vsockenc) or scanout (SUBSCRIBE) for the stream probes.",
                       choices=CHOICES["mode"], to_guest=True)
    host: str = option(DEFAULT_GUEST_HOST, "What the guest dials (default 10.0.2.2; 127.0.0.1 with --side both).",
                       metavar="ADDR", to_guest=True)
    port: int | None = option(None, "The port the guest dials (default: discovered).", kind=int, low=1,
                              high=65535, to_guest=True)
    socket: str | None = option(None, "The Unix socket (default: socat's target, QEMU's cwd, UTM's Group "
                                "Container).", metavar="PATH")
    qemu_log: str | None = option(None, "QEMU's log with its [HELIX] lines, or - for standard input (default: "
                                  "UTM's debug log of the VM, when debug logging is on).",
                                  metavar="PATH|-")
    gst_log: str | None = option(None, "vsockenc's GST_DEBUG log, or - for standard input.", metavar="PATH|-",
                                 to_guest=True)
    pipeline: str | None = option(None, "The guest's GStreamer pipeline, for the lint.", metavar="STRING",
                                  to_guest=True)
    pipewire_node: str | None = option(None, "The PipeWire video source node.", metavar="ID|NAME", to_guest=True)
    # The scanout path (docs/scanout.md).
    scanout_id: int | None = option(None, "The desktop's scanout id to subscribe to (default: from HELIX_SCANOUT_ID, "
                                    "$XDG_RUNTIME_DIR/helix-scanout-id or the bridge's log).", kind=int, low=0,
                                    high=15, to_guest=True)
    drm_socket: str = option(DEFAULT_DRM_SOCKET, f"helix-drm-manager's socket (default {DEFAULT_DRM_SOCKET}).",
                             metavar="PATH", to_guest=True)
    drm_log: str | None = option(None, "helix-drm-manager's journal (`journalctl -u helix-drm-manager`), or - "
                                 "for standard input.", metavar="PATH|-", to_guest=True)
    bridge_log: str | None = option(None, "desktop-bridge's output (`docker logs DESKTOP`), or - for standard "
                                    "input.", metavar="PATH|-", to_guest=True)
    subscribe: bool = option(True, "Subscribe to the scanout like desktop-bridge (default on; it holds one of the "
                             "host's 16 client slots for a few seconds).", kind=bool, to_guest=True)
    guest_agent: str = option("auto", "How --guest runs the guest side: installed = the guest's own helixdiag; "
                              "builtin = carry the probes over (needs only python3 3.8+ there); auto = installed "
                              "if present, else builtin.", choices=CHOICES["guest_agent"], in_report=False)
    guest_user: str = option("ubuntu", "The VM's user for --guest auto (ssh through QEMU's hostfwd to port 22).",
                             metavar="USER", in_report=False)
    timeout: float = option(2.0, "Seconds per network wait (default 2).", kind=float, low=0.05, high=600,
                            to_guest=True)
    frames: int = option(10, "Frames in the stream exchange (default 10).", kind=int, low=1, high=10_000,
                         in_report=False, to_guest=True)
    size: tuple[int, int] = option((640, 360), "Picture size of the stream exchange (default 640x360).",
                                   kind="size", metavar="WxH", in_report=False, to_guest=True)
    deadline: float = option(30.0, "Bound on the whole run, seconds (default 30).", kind=float, low=1, high=3600,
                             in_report=False)
    sources: dict[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def asked_for(self, name: str) -> bool:
        return self.source(name) != "default"

    def public(self) -> dict[str, Any]:
        """The config block of the report."""
        shown = {name: getattr(self, name) for name, f in OPTIONS.items() if f.metadata["in_report"]}
        return {**shown, "profile": self.sources.get("profile"), "sources": dict(self.sources)}

    def guest_options(self, given: dict[str, Any]) -> dict[str, str]:
        """The options the user gave that the guest side needs too, as text."""
        return {name: format_value(name, given[name]) for name, f in OPTIONS.items()
                if f.metadata["to_guest"] and given.get(name) is not None}

    def guest_arguments(self, given: dict[str, Any]) -> list[str]:
        """The same as command-line words, for a helixdiag installed on the guest."""
        return option_words(self.guest_options(given))


OPTIONS = {f.name: f for f in fields(RunConfig) if f.metadata.get("option")}


def option_words(options: dict[str, str]) -> list[str]:
    """{"gst_log": "b.log", "subscribe": "False"} → ["--gst-log", "b.log", "--no-subscribe"]."""
    words: list[str] = []
    for name, value in options.items():
        flag = name.replace("_", "-")
        if OPTIONS[name].metadata["kind"] is bool:
            words.append(f"--{flag}" if _BOOL_WORDS.get(value.strip().lower(), True) else f"--no-{flag}")
        else:
            words += [f"--{flag}", value]
    return words


def format_value(name: str, value: Any) -> str:
    return f"{value[0]}x{value[1]}" if OPTIONS[name].metadata["kind"] == "size" else str(value)


def parse_size(value: Any) -> tuple[int, int]:
    """`WxH` (e.g. 1920x1080; `×` and spaces forgiven), 1..8192 per side. Raises ValueError."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        w, h = value
    else:
        m = re.fullmatch(r"\s*([0-9]+)\s*[xX×]\s*([0-9]+)\s*", str(value))
        if not m:
            raise ValueError(f"{value!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
        w, h = int(m.group(1)), int(m.group(2))
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise ValueError(f"{w}x{h}: each side must be 1..{MAX_SIDE}")
    return w, h


_NOUNS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
_ACCEPTS = {int: (int, float, str), float: (int, float, str), str: (str,)}  # numbers may come as text
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = OPTIONS[name].metadata["kind"]
    try:
        if kind == "size":
            value = parse_size(value)
        elif kind is bool:
            if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                value = _BOOL_WORDS[value.strip().lower()]
            elif not isinstance(value, bool):
                raise ValueError(f"must be {_NOUNS[kind]}")
        elif isinstance(value, bool) or not isinstance(value, _ACCEPTS[kind]) or \
                (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"must be {_NOUNS[kind]}")  # TOML true, 2.5, arrays, tables, dates
        elif kind is not str:
            value = kind(value)
    except (TypeError, ValueError) as exc:
        detail = str(exc) if kind == "size" or str(exc).startswith("must") else f"must be {_NOUNS[kind]}"
        raise ConfigError(f"{origin}: {name} {detail}" + ("" if kind == "size" else f", got {value!r}")) from None
    _validate(name, value, origin)
    return value


def _validate(name: str, value: Any, origin: str) -> None:
    meta = OPTIONS[name].metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{origin}: {name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    low, high = meta["low"], meta["high"]
    if low is not None and not low <= value <= high:
        raise ConfigError(f"{origin}: {name} must be {low:g} to {high:g}, got {value}")
    if isinstance(value, str) and "\0" in value:
        # Paths with a NUL make every os/socket call raise ValueError in the probes.
        raise ConfigError(f"{origin}: {name} must not contain a NUL character, got {value!r}")


def profile_dirs() -> list[Path]:
    """Installed profiles first (wheel), then the source tree's checks/."""
    dirs = []
    try:
        installed = importlib.resources.files("helixdiag") / "_checks"  # novermin - profiles are read on the host only
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
        import tomllib  # novermin - profiles are read on the host; the guest agent resolves without one
    except ImportError:
        raise ConfigError(f"profile {path}: reading profiles needs Python 3.11 or newer") from None
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
    unknown = sorted(set(values) - set(OPTIONS) - {"description"})
    if unknown:
        raise ConfigError(f"profile {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
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
    for name in OPTIONS:
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
    from_stdin = [cfg.source(name) for name in LOG_OPTIONS if getattr(cfg, name) == STDIN]
    if len(from_stdin) > 1:
        raise ConfigError(f"{' and '.join(from_stdin)}: only one log can come from standard input (-)")
    for name in LOG_OPTIONS:
        path = getattr(cfg, name)
        if path is None or path == STDIN:
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
        seen = _may_exist(container / SOCKET_NAME)
        if cfg.socket is None and seen:
            cfg.socket = str(container / SOCKET_NAME)
            cfg.sources["socket"] = "UTM default" if seen == "exists" else "UTM default (not readable here)"
    if cfg.side == "both" and "host" not in cfg.sources:
        # Both sides on one machine: the "guest" reaches the host over loopback.
        cfg.host = "127.0.0.1"
        cfg.sources["host"] = "--side both (loopback)"
    if cfg.side == "auto":
        detected, why = detect_side()
        cfg.side = detected
        cfg.sources["side"] = f"auto: {why}"


def _may_exist(path: Path) -> str | None:
    """"exists", "unreadable" (macOS may refuse a look into another app's container: that is
    evidence for the probes, never a crash here), or None."""
    try:
        os.lstat(path)
    except PermissionError:
        return "unreadable"
    except OSError:
        return None
    return "exists"


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
