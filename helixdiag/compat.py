"""What the modules the guest agent carries need to run on Python 3.8 as on 3.11.

The guest agent (helixdiag/agent/) ships the guest-side probes and their facts to a machine
with only a system Python, 3.8 or newer. Those modules use these names instead of the
3.10/3.11 ones; `make test` holds them to 3.8 (vermin) and runs them on a real 3.8.
"""

from __future__ import annotations

import sys
from enum import Enum

# dataclass(slots=True) is 3.10+; older Pythons get the same dataclass without __slots__.
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}

try:  # the regex parser's modules were renamed in 3.11
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # Python < 3.11
    import sre_constants  # type: ignore[no-redef]  # novermin
    import sre_parse  # type: ignore[no-redef]  # novermin

__all__ = ["SLOTS", "StrEnum", "sre_constants", "sre_parse"]


class StrEnum(str, Enum):  # noqa: UP042 - enum.StrEnum is 3.11+
    """enum.StrEnum (3.11) for every Python: members are str, and print, format and
    serialise as their value (`f"{Status.PASS}"` is "pass", as json.dumps gives it)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
