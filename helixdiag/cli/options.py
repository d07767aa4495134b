"""Option parsing shared by several commands: `run`'s options (also `fix`'s and `watch`'s),
numbers in a range (said in plain words), sizes, formats, and output files — checked when the
options are parsed, before any work (`reporting` writes them)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from helixdiag.config import OPTIONS, parse_size
from helixdiag.protocol import FORMAT_NAMES, PixelFormat


class _PlainRange:
    """Mixin for click's ranges: say what is expected, e.g. "'abc' is not a whole number;
    expected a whole number from 1 to 65535" instead of "not a valid integer range"."""

    noun = "number"

    def expected(self) -> str:
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            if not (self.min_open or self.max_open):
                return f"a {self.noun} from {lo} to {hi}"
            return (f"a {self.noun} {'above' if self.min_open else 'of at least'} {lo} and "
                    f"{'below' if self.max_open else 'at most'} {hi}")
        if lo is not None:
            return f"a {self.noun} {'above' if self.min_open else 'of at least'} {lo}"
        if hi is not None:
            return f"a {self.noun} {'below' if self.max_open else 'of at most'} {hi}"
        return f"a {self.noun}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            try:
                self._number_class(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a {self.noun}; expected {self.expected()}", param, ctx)
            self.fail(f"{value} is out of range; expected {self.expected()}", param, ctx)


class IntRange(_PlainRange, click.IntRange):
    noun = "whole number"


class FloatRange(_PlainRange, click.FloatRange):
    noun = "number"


class SizeType(click.ParamType):
    """`WxH`, e.g. 1920x1080 (1..8192 per side, like vsockenc's caps)."""

    name = "WxH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()


class PixelFormatType(click.ParamType):
    name = "FORMAT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> PixelFormat:
        if isinstance(value, PixelFormat):
            return value
        fmt = FORMAT_NAMES.get(str(value).lower())
        if fmt is None:
            self.fail(f"{value!r}: choose nv12, bgrx or rgbx", param, ctx)
        return fmt


PIXEL_FORMAT = PixelFormatType()


def output_problem(path: str) -> str | None:
    """Why a file cannot be written at `path` (None when it can): checked before the work,
    so that a typo in `--html` does not cost a whole run."""
    target = Path(path).expanduser()
    if not path.strip():
        return "an empty file name"
    if target.is_dir():
        return f"{path} is a directory; give a file name in it"
    parent = target.parent
    if not parent.exists():
        return f"the directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if target.exists():
        if not os.access(target, os.W_OK):
            return f"{path} is not writable"
    elif not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create files in {parent} (permission denied)"
    return None


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Callback for output options (`--json PATH|-`, `--junit`, `--html`, `--bundle`,
    `--save`): exit 2 at once, one line, when the file cannot be written."""
    if value is None or value == "-":
        return value
    problem = output_problem(value)
    if problem:
        raise click.BadParameter(problem, ctx=ctx, param=param)
    return value



def run_options(func):
    """`run`'s options, built from their one declaration (config.RunConfig), shared by `run`,
    `fix` and `watch`; each can also come from HELIXDIAG_<NAME> or a profile."""
    options = [_click_option(name, f.metadata) for name, f in OPTIONS.items()]
    options.insert(-4, click.option("--profile", metavar="NAME|FILE",
                                    help="A profile from checks/ (e.g. macos-host, ci-smoke) or a TOML file."))
    for option in reversed(options):
        func = option(func)
    return func


def _click_option(name: str, meta: dict) -> Callable:
    kind, flag = meta["kind"], f"--{name.replace('_', '-')}"
    if meta["choices"]:
        return click.option(flag, type=click.Choice(meta["choices"]), help=meta["help"])
    if kind is bool:
        return click.option(f"{flag}/--no-{name.replace('_', '-')}", default=None, help=meta["help"])
    if kind is int:
        return click.option(flag, type=IntRange(meta["low"], meta["high"]), help=meta["help"])
    if kind is float:
        return click.option(flag, type=FloatRange(meta["low"], meta["high"]), help=meta["help"])
    return click.option(flag, type=SIZE if kind == "size" else None, metavar=meta["metavar"], help=meta["help"])


CONFIG_KEYS = (*OPTIONS, "profile")  # what `run_options` hands to config.resolve


def report_files(*, json: str, junit: str, html: str):
    """The report-file options a diagnosing command takes (`--json PATH|-`, `--junit`,
    `--html`), each checked before any work; the help says what each holds for this command."""
    options = [
        click.option("--json", "json_dest", metavar="PATH|-", callback=output_file, help=json),
        click.option("--junit", "junit_dest", metavar="PATH", callback=output_file, help=junit),
        click.option("--html", "html_dest", metavar="PATH", callback=output_file, help=html),
    ]

    def wrap(func):
        for option in reversed(options):
            func = option(func)
        return func
    return wrap
