"""`braas-globus presets list|add|remove|test`. Mounted by ``cli/__init__`` as ``presets``.

They need BRAAS_HOME (where presets.json lives), not the job store or config.toml."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional
from uuid import UUID

import typer
from rich.table import Table

from ..views import preset_row
from .common import LazyService, run

if TYPE_CHECKING:
    from ..output import Output

presets_app = typer.Typer(help="Where jobs render: `local` and your cluster presets.",
                          invoke_without_command=True)


def _rows(home: Path) -> list[dict[str, Any]]:
    from ..presets import list_presets

    return [preset_row(p) for p in list_presets(home)]


@presets_app.callback()
def presets_default(ctx: typer.Context,
                    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Without a subcommand: list the presets."""
    if ctx.invoked_subcommand is None:
        list_command(as_json)


@presets_app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the presets a job can render on."""

    def command(out: Output, service: LazyService) -> None:
        rows = _rows(service.home)
        table = Table("preset", "backend", "device", "where")
        for row in rows:
            table.add_row(row["name"], row["backend"], row["device"], row["description"])
        out.data(rows)
        out.table(table)

    run(as_json, command)


def _at_terminal() -> bool:
    import sys

    return sys.stdin.isatty()


@presets_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="A short name, e.g. karolina-gpu.")],
    cluster: Annotated[str, typer.Option(help="A cluster from `braas-globus clusters`.")],
    partition: Annotated[str, typer.Option(help="Partition or queue on that cluster.")],
    account: Annotated[str, typer.Option(help="Your project / allocation.")],
    endpoint: Annotated[UUID, typer.Option(help="The centre's Globus Compute endpoint id.")],
    collection: Annotated[UUID, typer.Option(help="The centre's Globus collection id.")],
    local_collection: Annotated[UUID, typer.Option(help="Your Globus Connect Personal collection id.")],
    remote_dir: Annotated[Optional[str], typer.Option(help="Your working directory on that collection, as the collection names it (default: the first of the cluster's scratch folders that lists, found by Transfer when you are logged in).")] = None,
    worker_dir: Annotated[Optional[str], typer.Option(help="The same folder as the centre's nodes see it, where that differs (a collection with a base path, or a /~/ remote dir); `presets test` proves it. Default: the same path.")] = None,
    local_dir: Annotated[Optional[str], typer.Option(help="BRAAS_HOME as your collection sees it (default: the same path).")] = None,
    guest_collection: Annotated[bool, typer.Option("--guest-collection", help="The centre's collection is a guest collection (no data_access consent); when you are logged in, Globus says which kind it is and wins.")] = False,
    user: Annotated[Optional[str], typer.Option(help="Your user name at the centre, for scratch folders named after it (default: your Globus username before '@').")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Take the working directory found without asking.")] = False,
    runtime: Annotated[str, typer.Option(help="image: Blender in the centre's Apptainer image; host: the centre's own Blender.")] = "image",
    blender_version: Annotated[Optional[str], typer.Option(help="The Blender version that renders there, e.g. 4.5.14 (`braas-globus container inspect IMAGE`): a scene saved by a newer Blender is refused at submit.")] = None,
    nodes: Annotated[int, typer.Option(help="Nodes per batch job.")] = 1,
    max_blocks: Annotated[int, typer.Option(help="Batch jobs at once.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add a cluster preset: checked against the catalog, then (when you are logged in)
    against Globus: the collection's kind, and the working directory when none is given."""
    from ..errors import UsageError
    from ..preset_check import prepare_preset
    from ..presets import add_preset

    def command(out: Output, service: LazyService) -> None:
        home = service.home
        prepared = prepare_preset(home, dict(
            name=name, cluster=cluster, partition=partition, account=account,
            endpoint_id=endpoint, collection_id=collection, remote_dir=remote_dir,
            worker_dir=worker_dir, local_collection_id=local_collection, local_dir=local_dir,
            mapped_collection=not guest_collection, runtime=runtime,
            blender_version=blender_version, nodes_per_block=nodes, max_blocks=max_blocks),
            user=user)
        notes = prepared.notes  # said once the preset is added: a refusal is one line
        if prepared.found and not yes:
            tried = "; ".join(prepared.tried)
            also = f" (before it: {tried})" if tried else ""
            if not _at_terminal():
                raise UsageError(f"found the working directory {prepared.found} on the "
                                 f"collection{also}: pass --yes to take it, or --remote-dir")
            if not typer.confirm(f"Use {prepared.found} as the working directory on the "
                                 "centre's collection?", default=True, err=True):
                raise UsageError(f"no working directory chosen (found {prepared.found}"
                                 f"{also}): pass --remote-dir")
        preset = add_preset(home, **prepared.fields)
        for note in notes:
            out.note(note)
        out.data(preset.model_dump(mode="json"), f"added preset {preset.name}: "
                                                 f"{preset.description}, working directory "
                                                 f"{preset.remote_dir}")
        if preset.mapped_collection:
            out.note("run `braas-globus login --force` once, so the login covers this "
                     "preset's collection")

    run(as_json, command)


@presets_app.command("remove")
def remove_command(name: str,
                   as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Remove a cluster preset."""
    from ..presets import remove_preset

    def command(out: Output, service: LazyService) -> None:
        remove_preset(service.home, name)
        out.data({"removed": name}, f"removed preset {name}")

    run(as_json, command)


@presets_app.command("test")
def test_command(name: str,
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check the endpoint, the collections and their kind, the working directory, and with
    a probe file that the centre's nodes see it where the preset says (one small Compute
    task, waited for up to 2 minutes)."""
    from .. import auth
    from ..errors import RunError, UsageError
    from ..preset_probe import check_preset
    from ..presets import ClusterPreset, get_preset

    def command(out: Output, service: LazyService) -> None:
        from ..dispatch.functions import render_function_id

        preset = get_preset(name, service.home)
        if not isinstance(preset, ClusterPreset):
            raise UsageError(f"'{name}' renders on this machine: nothing to test")
        transfer, compute = auth.transfer_client(), auth.compute_client()

        def function_id() -> str:  # the render function: the same id as every job's
            with auth.translate_auth_errors():
                return render_function_id(compute, service.home)

        with out.reporter(f"testing {name}") as reporter:
            checks = check_preset(preset, transfer, compute, home=service.home,
                                  function_id=function_id, reporter=reporter)
        out.data([vars(c) for c in checks],
                 "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in checks))
        if not all(c.ok for c in checks):
            raise RunError(f"preset {name} is not ready: "
                           + "; ".join(c.detail for c in checks if not c.ok))

    run(as_json, command)
