"""Option parsing shared by several commands (sizes, formats, JSON destinations)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from helixdiag.protocol import FORMAT_NAMES, PixelFormat


class SizeType(click.ParamType):
    """`WxH`, e.g. 1920x1080 (1..8192 per side, like vsockenc's caps)."""

    name = "WxH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not WIDTHxHEIGHT, e.g. 1920x1080", param, ctx)
        w, h = int(m.group(1)), int(m.group(2))
        if not (0 < w <= 8192 and 0 < h <= 8192):
            self.fail(f"{w}x{h}: each side must be 1..8192", param, ctx)
        return w, h


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


def write_json(app, destination: str, document: Any) -> None:
    """`-` → stdout (and nothing else there), else a file."""
    text = json.dumps(document, indent=2, default=str)
    if destination == "-":
        app.terminal.write_machine(text)
        return
    try:
        Path(destination).write_text(text + "\n")
    except OSError as exc:
        from helixdiag.errors import ConfigError

        raise ConfigError(f"cannot write JSON to {destination}: {exc.strerror or exc}") from None
