"""`run --guest`: the guest side in each place, through its prefix, by the helixdiag
installed there or by the guest agent, each report judged and tagged with its place."""

from __future__ import annotations

from helixdiag import remote
from helixdiag.agent import judge, payload
from helixdiag.agent.places import Place
from helixdiag.config import option_words

CONNECT_TIMEOUT = 20.0  # the first sign of life from a place (within --guest-timeout)


def run_place(place: Place, options: dict[str, str], names: list[str], *, mode: str,
              timeout: float) -> remote.RemoteResult:
    """One place's guest run; `options` are the forwarded `run` options, as text."""
    here = names
    if place.layers is not None:  # this place runs only its own layers
        here = [n for n in names if n.split(".")[0] in place.layers] or list(place.layers)
    program = "" if mode == "installed" else payload.program(options, here, list(place.layers or ()) or None)
    result = remote.run_guest(place.prefix, option_words(options) + here, connect_timeout=min(CONNECT_TIMEOUT, timeout),
                              run_timeout=timeout, mode=mode, program=program)
    result.place = place.name
    if result.agent == "builtin" and result.report is not None:
        result.report = judge.judge_report(result.report)  # what needs PyAV is judged here
    return result
