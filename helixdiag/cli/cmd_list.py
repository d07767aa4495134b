"""`helixdiag list`: the probes, their layers and sides."""

from __future__ import annotations

import json

import click
from rich.table import Table

from helixdiag.layers import LAYERS
from helixdiag.probes import all_probes


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_obj
def command(app, as_json: bool) -> None:
    """List the probes, grouped by layer along the data path."""
    probes = all_probes()
    if as_json:
        app.terminal.write_machine(
            json.dumps(
                [{"id": p.id, "layer": p.layer, "side": str(p.side), "description": p.description}
                 for p in probes],
                indent=2,
            )
        )
        return
    table = Table(title="helixdiag probes (guest → host)", title_justify="left")
    table.add_column("layer")
    table.add_column("side")
    table.add_column("probe")
    table.add_column("checks")
    for layer in LAYERS:
        mine = [p for p in probes if p.layer == layer.name]
        if not mine:
            table.add_row(layer.name, str(layer.side), "[muted]—[/muted]", f"[muted]{layer.establishes} (no probes yet)[/muted]")
        for p in mine:
            table.add_row(layer.name, str(p.side), p.id, p.description)
    app.terminal.print(table)
