"""Where the guest side runs: one or more places, each a name and a command prefix.

    --guest PREFIX            one place, named "guest" (what --guest always meant)
    --guest vm=PREFIX         a named place; give --guest again for another
    --guest auto              the VM, by ssh through the forward QEMU has for its port 22

Each place runs the guest layers that live there: in today's Helix the VM has no desktop
session, so "vm" judges the drm-manager, the scanouts (sysfs) and its path to the host (guest-tcp); every other
place (a desktop container, a plain guest) runs every guest layer.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from helixdiag.errors import UsageError
from helixdiag.observe.facts import Observations
from helixdiag.observe.parsers import ParseError, parse_qemu_cmdline

DEFAULT_NAME = "guest"
AUTO = "auto"
AUTO_NAME = "vm"
SSH_PORT = 22
# The layers of a place by its name; a name not listed runs every guest layer.
PLACE_LAYERS: dict[str, tuple[str, ...]] = {"vm": ("drm-manager", "scanout", "guest-tcp")}
_NAMED = re.compile(r"^([a-z][a-z0-9-]*)=(.+)$", re.DOTALL)
_HOSTFWD = re.compile(r"^(tcp|udp)?:([^:]*):(\d+)-([^:]*):(\d+)$")


@dataclass(frozen=True)
class Place:
    name: str
    prefix: str
    layers: tuple[str, ...] | None  # None: every guest layer

    @property
    def observer(self) -> str:
        """Who observed the facts of this place's probes, as the report says it."""
        return f"guest:{self.name}"


def parse_places(values: list[str], *, user: str, connect_timeout: float,
                 obs: Observations | None = None) -> list[Place]:
    """The places of `--guest` (each value once, names unique)."""
    places: list[Place] = []
    for value in values:
        if value.strip() == AUTO:
            name, prefix = AUTO_NAME, auto_prefix(obs or Observations(), user, connect_timeout)
        elif m := _NAMED.match(value.strip()):
            name, prefix = m.group(1), m.group(2).strip()
        else:
            name, prefix = DEFAULT_NAME, value.strip()
        if not prefix:
            raise UsageError(f"--guest {value!r}: no command prefix, e.g. --guest 'vm=ssh ubuntu@helix-vm'")
        if any(p.name == name for p in places):
            raise UsageError(f"--guest: the place {name!r} is given twice; name each one (--guest NAME=PREFIX)")
        places.append(Place(name, prefix, PLACE_LAYERS.get(name)))
    return places


def ssh_port_forward(argv: list[str]) -> int | None:
    """The host port QEMU forwards to the guest's port 22 (`hostfwd=tcp::41222-:22`)."""
    try:
        rules = parse_qemu_cmdline(argv).hostfwds
    except ParseError:
        return None
    for rule in rules:
        m = _HOSTFWD.match(rule)
        if m and (m.group(1) or "tcp") == "tcp" and int(m.group(5)) == SSH_PORT:
            return int(m.group(3))
    return None


def auto_prefix(obs: Observations, user: str, connect_timeout: float) -> str:
    """`ssh -p PORT … USER@127.0.0.1` for the running QEMU that forwards a port to 22."""
    ports = sorted({port for q in obs.qemu_processes if (port := ssh_port_forward(list(q.argv))) is not None})
    if not ports:
        raise UsageError("--guest auto: no running QEMU forwards a host port to the guest's port 22 "
                         "(hostfwd=tcp::PORT-:22); give the prefix yourself, e.g. --guest 'vm=ssh -p 41222 "
                         "ubuntu@127.0.0.1'")
    if len(ports) > 1:
        raise UsageError(f"--guest auto: several QEMUs forward to port 22 (host ports {', '.join(map(str, ports))}); "
                         "name the one you mean: --guest 'vm=ssh -p PORT ubuntu@127.0.0.1'")
    return shlex.join(["ssh", "-p", str(ports[0]), "-o", "BatchMode=yes", "-o",
                       f"ConnectTimeout={max(1, round(connect_timeout))}", f"{user}@127.0.0.1"])
