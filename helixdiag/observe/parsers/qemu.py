"""QEMU command lines: the devices, the helix port, and the display options.

As with socat, a path with a space comes back split from `ps`; the parser rejoins it and
says so in `rejoined_whitespace`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from helixdiag.observe.parsers.common import (
    ParseError,
    as_argv,
    basename,
    int_or_none,
    port_or_none,
)

# QEMU options that never take a value. Anything else takes the next argument, except an
# unknown option followed by another option.
_QEMU_FLAGS = frozenset(
    {
        "S", "s", "nodefaults", "no-user-config", "nographic", "enable-kvm", "no-kvm", "snapshot",
        "daemonize", "no-reboot", "no-shutdown", "full-screen", "no-hpet", "no-acpi", "no-quit",
        "alt-grab", "ctrl-grab", "win2k-hack", "no-fd-bootchk", "usb", "preconfig", "version", "h",
        "help", "only-migratable", "enable-fips", "singlestep", "no-frame", "curses",
        "semihosting", "old-param", "enable-sync-profile", "rtc-td-hack", "localtime",
    }
)  # fmt: skip
_QEMU_VALUE_OPTIONS = frozenset(
    {
        "device", "drive", "spice", "display", "accel", "machine", "M", "m", "smp", "cpu", "L",
        "name", "uuid", "chardev", "mon", "netdev", "nic", "net", "qmp", "global", "serial", "vga",
        "boot", "bios", "kernel", "append", "initrd", "object", "audiodev", "rtc", "monitor",
        "vnc", "cdrom", "hda", "hdb", "fsdev", "virtfs", "incoming", "pidfile", "D", "d", "trace",
        "k", "overcommit", "sandbox", "msg", "action", "compat", "blockdev", "numa", "icount",
        "plugin", "run-with", "parallel", "debugcon", "gdb", "loadvm", "smbios", "fw_cfg", "iscsi",
        "tpmdev", "add-fd", "semihosting-config", "dtb", "mem-path", "watchdog-action", "usbdevice",
    }
)  # fmt: skip
_VIRTIO_GPU = re.compile(r"^virtio-(?:gpu|vga|ramfb)", re.IGNORECASE)


def _split_qemu_opts(text: str) -> list[tuple[str, str | None]]:
    """`driver,a=1,b=x,,y` -> [("driver", None), ("a", "1"), ("b", "x,y")] (",," is a comma)."""
    items: list[str] = []
    buf: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == ",":
            if index + 1 < len(text) and text[index + 1] == ",":
                buf.append(",")
                index += 2
                continue
            items.append("".join(buf))
            buf = []
        else:
            buf.append(char)
        index += 1
    items.append("".join(buf))
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        if not item:
            continue
        name, eq, value = item.partition("=")
        pairs.append((name, value if eq else None))
    return pairs


@dataclass(frozen=True)
class QemuDevice:
    """A `-device DRIVER,prop=value,...` argument."""

    raw: str
    driver: str | None
    props: tuple[tuple[str, str | None], ...]

    def prop(self, name: str) -> str | None:
        for key, value in self.props:
            if key == name:
                return value
        return None

    @classmethod
    def parse(cls, raw: str) -> QemuDevice:
        pairs = _split_qemu_opts(raw)
        driver = None
        if pairs and pairs[0][1] is None:
            driver = pairs[0][0]
            pairs = pairs[1:]
        else:
            driver = next((value for key, value in pairs if key == "driver"), None)
        return cls(raw=raw, driver=driver, props=tuple(pairs))


@dataclass(frozen=True)
class QemuConfig:
    """A QEMU command line (`qemu-system-aarch64 ...`, or UTM's `QEMULauncher <framework binary>
    ...`). `options` lists every option in order as (name without dashes, value or None)."""

    argv: tuple[str, ...]
    launcher: str | None
    binary: str | None
    options: tuple[tuple[str, str | None], ...]
    positional: tuple[str, ...]
    devices: tuple[QemuDevice, ...]
    helix_port: int | None
    helix_port_raw: str | None
    helix_device: str | None
    virtio_gpu: str | None
    accel: tuple[str, ...]
    machine: str | None
    display: tuple[str, ...]
    spice: str | None
    spice_addr: str | None
    spice_gl: str | None
    rejoined_whitespace: bool = False

    @property
    def virtio_gpu_gl(self) -> bool:
        return self.virtio_gpu is not None and "-gl" in self.virtio_gpu.lower()

    def option_values(self, name: str) -> tuple[str, ...]:
        return tuple(value for key, value in self.options if key == name and value is not None)

    @property
    def network_kinds(self) -> tuple[str, ...]:
        """The backend of each `-netdev` (user, vmnet-shared, vmnet-bridged, …)."""
        return tuple(value.split(",", 1)[0] for value in self.option_values("netdev"))

    @property
    def hostfwds(self) -> tuple[str, ...]:
        """`hostfwd=` rules of user-mode networking, e.g. `tcp::41222-:22`."""
        return tuple(v for value in self.option_values("netdev")
                     for k, v in _split_qemu_opts(value) if k == "hostfwd" and v)

    @property
    def utm_data_dir(self) -> str | None:
        """The VM bundle's `Data` directory (`…/NAME.utm/Data`), from a drive's file path: UTM
        keeps the VM's files there, its debug log (`debug.log`) among them."""
        for value in self.option_values("drive"):
            for key, path in _split_qemu_opts(value):
                if key in ("file", "file.filename") and path and ".utm/Data/" in path:
                    return path[:path.index(".utm/Data/") + len(".utm/Data")]
        return None

    @property
    def max_outputs(self) -> int | None:
        """virtio-gpu's `max_outputs` (device property or `-global DRIVER.max_outputs=N`)."""
        raw = next((d.prop("max_outputs") for d in self.devices if d.prop("max_outputs") is not None), None)
        for value in self.option_values("global"):
            target, _, setting = value.partition("=")
            if target.endswith(".max_outputs"):
                raw = setting
        return int_or_none(raw)

    def describe(self) -> dict[str, object]:
        """What a bug ticket needs from the command line: how the VM was started."""
        return {
            "launcher": self.launcher, "binary": self.binary,
            "helix_port": self.helix_port_raw, "helix_device": self.helix_device,
            "virtio_gpu": self.virtio_gpu, "virtio_gpu_gl": self.virtio_gpu_gl,
            "accel": list(self.accel), "machine": self.machine, "display": list(self.display),
            "spice": self.spice, "spice_addr": self.spice_addr, "spice_gl": self.spice_gl,
            "netdev": list(self.option_values("netdev")), "network": list(self.network_kinds),
            "max_outputs": self.max_outputs,
            "disks": list(self.positional),
            "argv_rejoined_at_spaces": self.rejoined_whitespace,
        }


def parse_qemu_cmdline(argv: Sequence[str] | str) -> QemuConfig:
    """Parse a QEMU argv. Accepts `-opt value`, `--opt value` and `-opt=value`.

    `helix_port` comes from any `-device` value with `helix-port=N` (or `-global
    DRIVER.helix-port=N`). A plain string is split on whitespace (as `ps` shows it); a piece that
    follows an option's value without being an option is taken to be the rest of that value split
    at a space, and rejoined (`rejoined_whitespace`). Raises ParseError for an empty argv.
    """
    args = as_argv(argv)
    if not args:
        raise ParseError("empty QEMU command line")
    launcher = binary = None
    index = 0
    if not args[0].startswith("-"):
        if "launcher" in basename(args[0]).lower() and len(args) > 1 and not args[1].startswith("-"):
            launcher, binary, index = args[0], args[1], 2
        else:
            binary, index = args[0], 1
    options: list[tuple[str, str | None]] = []
    positional: list[str] = []
    rejoined = False
    last_valued: int | None = None
    while index < len(args):
        item = args[index]
        index += 1
        if item.startswith("-") and len(item) > 1 and item != "--":
            name = item.lstrip("-")
            value: str | None = None
            if "=" in name:
                name, _, value = name.partition("=")
            elif name in _QEMU_FLAGS:
                pass
            elif index < len(args) and (name in _QEMU_VALUE_OPTIONS or not args[index].startswith("-")):
                value = args[index]
                index += 1
            options.append((name, value))
            last_valued = len(options) - 1 if value is not None else None
        elif last_valued is not None:
            key, value = options[last_valued]
            options[last_valued] = (key, f"{value} {item}")
            rejoined = True
        else:
            positional.append(item)

    devices = tuple(QemuDevice.parse(value) for key, value in options if key == "device" and value)
    helix_raw = helix_device = None
    for device in devices:
        if device.prop("helix-port") is not None:
            helix_raw, helix_device = device.prop("helix-port"), device.driver
            break
    if helix_raw is None:
        for key, value in options:
            if key == "global" and value:
                target, _, setting = value.partition("=")
                if target.endswith(".helix-port"):
                    helix_raw, helix_device = setting, target.rpartition(".")[0]
                    break
    virtio_gpu = next(
        (device.driver for device in devices if device.driver and _VIRTIO_GPU.match(device.driver)), None
    )

    accel: list[str] = []
    machine = None
    for key, value in options:
        if key == "accel" and value:
            pairs = _split_qemu_opts(value)
            if pairs and pairs[0][1] is None:
                accel.append(pairs[0][0])
            else:
                accel.extend(v for k, v in pairs if k == "accel" and v)
        elif key in ("machine", "M") and value:
            pairs = _split_qemu_opts(value)
            if machine is None and pairs:
                machine = pairs[0][0] if pairs[0][1] is None else next((v for k, v in pairs if k == "type"), None)
            for k, v in pairs:
                if k == "accel" and v:
                    accel.extend(part for part in v.split(":") if part)
        elif key == "enable-kvm":
            accel.append("kvm")

    spice = next((value for key, value in options if key == "spice" and value), None)
    spice_pairs = dict(_split_qemu_opts(spice)) if spice else {}
    return QemuConfig(
        argv=tuple(args),
        launcher=launcher,
        binary=binary,
        options=tuple(options),
        positional=tuple(positional),
        devices=devices,
        helix_port=port_or_none(helix_raw),
        helix_port_raw=helix_raw,
        helix_device=helix_device,
        virtio_gpu=virtio_gpu,
        accel=tuple(accel),
        machine=machine,
        display=tuple(value for key, value in options if key == "display" and value),
        spice=spice,
        spice_addr=spice_pairs.get("addr"),
        spice_gl=spice_pairs.get("gl"),
        rejoined_whitespace=rejoined,
    )
