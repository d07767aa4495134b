"""The guest agent: `run --guest` carries the guest-side probes to a guest where nothing is
installed (docs/guest.md).

    guest.py     runs there: the guest probes under the runner, one JSON report on stdout
    recorder.py  runs there: the frame exchange recorded (bytes, not verdicts) for the host
    closure.py   which helixdiag modules the guest side imports, computed from the code
    payload.py   the zip of those modules and the Python that unpacks and runs it
    judge.py     back on the host: the recorded replies validated and decoded
    places.py    the places (`--guest NAME=PREFIX`, `--guest auto`) and what runs in each

guest.py and recorder.py, and everything they import, run on Python 3.8+ with the standard
library alone (tests/test_agent_payload.py holds them to it).
"""
