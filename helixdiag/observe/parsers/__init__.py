"""Pure parsers for what the host tools print (lsof, otool, ps) and for the command lines
of socat and QEMU: one module per tool.

Each function turns text that a caller captured from a real tool (or an argv list) into frozen
dataclasses. Nothing here runs a command or touches the file system: the caller runs the tool
with a timeout and passes its stdout in. Every parser raises the one `ParseError` (a
`ValueError`) for input that cannot mean anything, and nothing else, whatever the input.
"""

from __future__ import annotations

from helixdiag.observe.parsers.common import ParseError
from helixdiag.observe.parsers.lsof import LsofEntry, parse_lsof_fields, parse_lsof_table
from helixdiag.observe.parsers.otool import OtoolDep, OtoolDeps, parse_otool_L
from helixdiag.observe.parsers.ps import PsEntry, parse_ps_lines
from helixdiag.observe.parsers.qemu import QemuConfig, QemuDevice, parse_qemu_cmdline
from helixdiag.observe.parsers.socat import SocatAddress, SocatConfig, parse_socat_cmdline

__all__ = [
    "LsofEntry",
    "OtoolDep",
    "OtoolDeps",
    "ParseError",
    "PsEntry",
    "QemuConfig",
    "QemuDevice",
    "SocatAddress",
    "SocatConfig",
    "parse_lsof_fields",
    "parse_lsof_table",
    "parse_otool_L",
    "parse_ps_lines",
    "parse_qemu_cmdline",
    "parse_socat_cmdline",
]
