"""`run`'s options are declared once (config.RunConfig): the command line of run/fix/watch,
HELIXDIAG_<NAME>, profiles, the report's config block and what `--guest` forwards all
derive from that one declaration, with one range check for every source."""

from __future__ import annotations

import pytest

from helixdiag.cli import cli
from helixdiag.config import OPTIONS, RunConfig, format_value, resolve
from helixdiag.errors import ConfigError


def flags_of(command_name: str) -> dict[str, object]:
    command = cli.commands[command_name]
    return {p.name: p for p in command.params}


@pytest.mark.parametrize("command", ["run", "fix", "watch"])
def test_every_declared_option_is_on_the_command_line_with_its_help(command):
    params = flags_of(command)
    for name, f in OPTIONS.items():
        assert name in params, f"{command} lacks --{name.replace('_', '-')}"
        assert params[name].help == f.metadata["help"]
    assert "profile" in params


@pytest.mark.parametrize(("name", "bad", "good"), [
    ("port", "70000", 41937), ("timeout", "0", 1.5), ("frames", "0", 3), ("deadline", "7200", 60.0),
    ("side", "sideways", "host"), ("size", "9000x10", (320, 240)),
])
def test_one_range_for_flags_environment_and_profiles(tmp_path, name, bad, good):
    env_name = f"HELIXDIAG_{name.upper()}"
    with pytest.raises(ConfigError) as from_env:
        resolve({}, env={env_name: bad})
    assert env_name in str(from_env.value)
    profile = tmp_path / "p.toml"
    profile.write_text(f'[run]\n{name} = "{bad}"\n')
    with pytest.raises(ConfigError) as from_profile:
        resolve({"profile": str(profile)}, env={})
    assert "profile" in str(from_profile.value)
    with pytest.raises(ConfigError):
        resolve({name: bad}, env={})
    text = format_value(name, good)
    assert getattr(resolve({}, env={env_name: text}), name) == good


def test_the_size_is_parsed_once_into_numbers():
    cfg = resolve({"size": "1920x1080"}, env={})
    assert cfg.size == (1920, 1080)
    assert resolve({}, env={"HELIXDIAG_SIZE": "320 × 240"}).size == (320, 240)


def test_guest_arguments_forward_exactly_the_guest_options():
    given = {name: None for name in OPTIONS}
    given.update(port=41937, size=(320, 240), socket="/tmp/x.sock", side="both", gst_log="/tmp/b.log")
    words = RunConfig().guest_arguments(given)
    assert words == ["--port", "41937", "--gst-log", "/tmp/b.log", "--size", "320x240"]
    forwarded = {n for n, f in OPTIONS.items() if f.metadata["to_guest"]}
    assert "socket" not in forwarded and "side" not in forwarded and "port" in forwarded


def test_the_report_shows_the_declared_options_and_where_each_came_from():
    cfg = resolve({"port": 5900}, env={"HELIXDIAG_TIMEOUT": "3"})
    block = cfg.public()
    shown = {n for n, f in OPTIONS.items() if f.metadata["in_report"]}
    assert shown <= block.keys()
    assert "deadline" not in block
    assert block["port"] == 5900 and block["sources"]["port"] == "--port"
    assert block["timeout"] == 3.0 and block["sources"]["timeout"] == "$HELIXDIAG_TIMEOUT"
