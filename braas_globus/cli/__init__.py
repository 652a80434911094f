"""The `braas-globus` command: a thin front end over the service layer.

This package's ``__init__`` holds the typer ``app`` and :func:`main` (the console script,
and ``python -m braas_globus.cli``); it imports one module per command group and registers
their commands. The command modules import ``common`` (the ``run`` wrapper, the shared
options), never this one, so the imports run one way.

Exit codes: 0 success, 1 a failed run, 2 invalid input (nothing was written).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from . import (
    auth,
    cleanup,
    clusters,
    container,
    endpoints,
    estimate,
    function,
    jobs,
    presets,
    preview,
    store,
)

app = typer.Typer(help="Render Blender scenes on HPC centres through Globus, or on this machine.",
                  pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _version(wanted: bool) -> None:
    if wanted:
        print(f"braas-globus {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version of braas-globus and exit.")] = False) -> None:
    """Render Blender scenes on HPC centres through Globus, or on this machine."""

app.command()(jobs.submit)
app.command()(estimate.estimate)
app.command()(jobs.demo)
app.command("list")(jobs.list_jobs)
app.command()(jobs.info)
app.command()(jobs.logs)
app.command()(jobs.cancel)
app.command()(jobs.download)
app.command()(jobs.resume)
app.command()(preview.preview)
app.command()(cleanup.delete)
app.command()(cleanup.clean)
app.command()(clusters.clusters)
app.command()(auth.login)
app.command()(auth.logout)
app.command()(auth.whoami)
app.command()(function.function)
app.add_typer(presets.presets_app, name="presets")
app.add_typer(container.container_app, name="container")
app.add_typer(endpoints.endpoints_app, name="endpoints")
app.add_typer(store.store_app, name="store")


def main(argv: list[str] | None = None) -> int:
    """Entry point: click's own usage errors also become one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    try:  # no arguments: the help, once
        result = app(args=args or ["--help"], prog_name="braas-globus", standalone_mode=False)
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # typer ships its own click, so its usage errors are matched by their shape.
        if not (hasattr(err, "format_message") and hasattr(err, "exit_code")):
            raise
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
            return 0  # a command group given alone (`braas-globus presets`): typer showed its help
        command = ctx.command_path if ctx is not None else "braas-globus"
        message = " ".join(err.format_message().split())
        print(f"error: {message} (see `{command} --help`)", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
