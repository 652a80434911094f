"""`braas-globus delete` and `clean`: remove ended jobs, their records and folders.
Registered on the app by ``cli/__init__``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import UsageError
from ..output import Output
from ..store import JobRecord
from .common import JobArg, JsonOption, LazyService, run

YesOption = Annotated[bool, typer.Option(
    "--yes", "-y", help="Delete without asking (needed off a terminal).")]


def _confirmed(out: Output, jobs: list[JobRecord], yes: bool) -> bool:
    """Deleting frames cannot be undone: ask a person; a script must say --yes."""
    if yes:
        return True
    if out.as_json or not sys.stdin.isatty():
        raise UsageError("deleting cannot be undone: give --yes to delete without asking")
    for job in jobs:
        out.note(f"  {job.id}  {job.state.value}  {job.frames_done}/{job.frame_count} frames  "
                 f"{job.folder}")
    return typer.confirm(f"Delete {len(jobs)} job(s) and their frames?", default=False,
                         err=True)


def _delete(out: Output, service: LazyService, jobs: list[JobRecord]) -> None:
    from ..cleanup import delete_job

    freed, deleted = 0, []
    for job in jobs:
        freed += delete_job(service.opened(), job)
        deleted.append(job.id)
    out.data({"deleted": deleted, "freed_bytes": freed},
             f"deleted {len(deleted)} job(s), {freed / 1e6:.1f} MB freed")


def delete(job: JobArg, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Delete an ended job: its record and its folder (frames, logs). Cancel it first if it
    is still rendering; what it left at a centre stays there."""

    def command(out: Output, service: LazyService) -> None:
        from ..cleanup import deletable

        record, _ = service.refresh(job)  # its state now, not as last recorded
        deletable(service.opened(), record)  # before asking: a question that cannot be
        if _confirmed(out, [record], yes):   # answered yes is not asked
            _delete(out, service, [record])

    run(as_json, command)


def clean(
    older_than: Annotated[float, typer.Option(
        "--older-than", metavar="DAYS", help="Delete the ended jobs that ended over DAYS ago.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only list the jobs it would delete.")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every ended job older than some days, with its folder."""

    def command(out: Output, service: LazyService) -> None:
        from ..cleanup import deletable, ended_jobs_older_than

        jobs = ended_jobs_older_than(service.opened(), older_than)
        for job in jobs:
            deletable(service.opened(), job)
        if dry_run or not jobs:
            out.data({"would_delete": [job.id for job in jobs]},
                     "\n".join(job.id for job in jobs) or
                     f"no ended job is older than {older_than:g} days")
            return
        if _confirmed(out, jobs, yes):
            _delete(out, service, jobs)

    run(as_json, command)
