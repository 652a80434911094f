"""`braas-globus endpoints generate`: make endpoints/<cluster>/ from the cluster catalog.

Kept apart from the rest of the CLI (registered with one line where the ``endpoints``
command group is built), and free of the CLI's service layer: it needs no settings, no
store and no login.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

CheckOption = Annotated[bool, typer.Option(
    "--check", help="Write nothing; exit 1 and list the files that differ from the catalog.")]
TargetOption = Annotated[Optional[Path], typer.Option(
    "--target", help="The endpoints/ folder to write (default: this checkout's).",
    file_okay=False)]


def endpoints_generate(check: CheckOption = False, target: TargetOption = None) -> None:
    """Write every centre's endpoint template, schema and admin README from the cluster
    catalog (braas_globus/catalog/clusters.toml); commit what it changes."""
    from .catalog import load_catalog
    from .endpoint_config import ENDPOINTS_DIR
    from .endpoint_gen import write

    folder = target or ENDPOINTS_DIR
    try:
        differ = write(folder, load_catalog(), check=check)
    except (OSError, ValueError, KeyError) as err:
        typer.echo(f"error: cannot generate the endpoint files in {folder}: {err}", err=True)
        raise typer.Exit(1) from None
    if check:
        if differ:
            typer.echo(f"{len(differ)} file(s) in {folder} differ from the catalog; "
                       "run `braas-globus endpoints generate`:", err=True)
            for name in differ:
                typer.echo(f"  {name}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{folder}: up to date with the catalog")
        return
    for name in differ:
        typer.echo(f"wrote {folder / name}" if not name.endswith(")") else f"left {name}")
    if not differ:
        typer.echo(f"{folder}: up to date with the catalog")
