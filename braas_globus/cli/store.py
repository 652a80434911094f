"""`braas-globus store check|rebuild`: find out what is wrong with the job store, and
rebuild it from the job folders.

Mounted by ``cli/__init__`` as ``app.add_typer(store_app, name="store")``. These commands
never open the store the way the others do (a damaged store is what they are for), so they
turn errors into one line themselves, as ``common.run`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import JsonOption, write_crash_report

if TYPE_CHECKING:
    from ..output import Output
    from ..settings import Settings

store_app = typer.Typer(help="The job store: check it, or rebuild it from the job folders.",
                        no_args_is_help=True)


def _run(as_json: bool, command: Callable[[Output, Settings], Any]) -> Any:
    from ..disk import disk_full_error, is_disk_full_error
    from ..errors import BraasError, UsageError
    from ..output import Output
    from ..settings import load_settings

    out = Output(as_json)
    try:
        return command(out, load_settings())
    except typer.Exit:
        raise
    except UsageError as err:
        out.error(str(err))
        raise typer.Exit(2) from None
    except BraasError as err:
        out.error(str(err))
        raise typer.Exit(1) from None
    except Exception as err:
        if is_disk_full_error(err):
            out.error(str(disk_full_error(err)))
        else:  # a bug of ours: one line for the user, the trace in a file
            out.error(f"unexpected error ({type(err).__name__}: {err}); the full report is in "
                      f"{write_crash_report()}")
        raise typer.Exit(1) from None


@store_app.command("check")
def check_command(as_json: JsonOption = False) -> None:
    """SQLite's integrity check, and a record for every job folder (and the reverse).

    Exit 0 when all is well, 1 when there are problems (each one listed). Reads only.
    """

    def command(out: Output, settings: Settings) -> None:
        from ..store_repair import check_store

        report = check_store(settings)
        lines = [f"the job store {report.store}: {report.records} job records, "
                 f"{report.folders} job folders in {report.jobs_dir}"]
        lines += [f"  problem: {problem}" for problem in report.problems]
        lines.append("no problems" if not report.problems else
                     "`braas-globus store rebuild` rebuilds the store from the job folders")
        out.data(report.as_json(), "\n".join(lines))
        if report.problems:
            raise typer.Exit(1)

    _run(as_json, command)


@store_app.command("rebuild")
def rebuild_command(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when `store check` finds nothing wrong.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild the store's jobs, tasks and frames from the job folders.

    The old store is moved aside to <store>.damaged-<time>, never deleted. Finished frames
    are DONE; `braas-globus resume JOB` renders what is missing.
    """

    def command(out: Output, settings: Settings) -> None:
        from ..store_repair import check_store, rebuild_store

        if not force and not check_store(settings).problems:
            out.data({"store": str(settings.store_path), "moved_aside": [], "jobs": [],
                      "skipped": []},
                     "nothing to rebuild: the store and the job folders agree "
                     "(--force rebuilds it anyway)")
            return
        report = rebuild_store(settings)
        lines = [f"rebuilt {len(report.jobs)} job(s) from {settings.jobs_dir} into "
                 f"{report.store}"]
        lines += [f"  {job['id']}  {job['state']}  {job['frames_done']}/{job['frame_count']} "
                  "frames" for job in report.jobs]
        lines += [f"  skipped {s['folder']}: {s['reason']}" for s in report.skipped]
        lines.append(f"the old store is kept as {report.moved_aside[0]}" if report.moved_aside
                     else "there was no old store")
        out.data(report.as_json(), "\n".join(lines))

    _run(as_json, command)
