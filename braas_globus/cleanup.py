"""Delete jobs: one by id (`braas-globus delete`), or every ended job older than some days
(`braas-globus clean`).

Only an ended job is deleted (a rendering one is canceled first, by the user), and only a
folder that is a job folder of this BRAAS_HOME: the folder comes from the store, which a
damaged or hand-edited store could point anywhere. The record goes first, then the folder;
a folder that cannot be removed is named, and `store check` finds it. What a job left at a
centre (its folder in the preset's working directory) stays there.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .errors import RunError, UsageError
from .service import Service
from .store import JobRecord

DAY_SECONDS = 86400.0


def deletable(service: Service, job: JobRecord) -> None:
    """UsageError unless ``job`` may be deleted: it has ended, its folder is a job folder."""
    if not job.state.is_final:
        raise UsageError(f"job {job.id} is {job.state.value}: `braas-globus cancel {job.id}` "
                         "first, then delete it")
    jobs_dir = service.settings.jobs_dir.resolve()
    if job.folder.resolve(strict=False) != jobs_dir / job.id:
        raise UsageError(f"job {job.id}'s folder {job.folder} is not {jobs_dir / job.id}: "
                         "not deleting a folder outside the job storage")


def delete_job(service: Service, job: JobRecord) -> int:
    """Delete an ended job's record and folder; returns the bytes that frees."""
    deletable(service, job)
    size = freed_bytes(job.folder)
    service.store.delete_job(job.id)
    try:
        shutil.rmtree(job.folder)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise RunError(f"job {job.id}'s record is deleted, but its folder {job.folder} could "
                       f"not be removed: {err.strerror or err}") from None
    return size


def ended_jobs_older_than(service: Service, days: float, now: float | None = None) -> list[JobRecord]:
    """The ended jobs that ended (or were submitted, if no end is known) over ``days`` ago."""
    if not days > 0:
        raise UsageError(f"--older-than {days}: give a number of days above 0")
    cutoff = (time.time() if now is None else now) - days * DAY_SECONDS
    return [job for job in service.store.jobs()
            if job.state.is_final and (job.ended or job.created) < cutoff]


def freed_bytes(folder: Path) -> int:
    """The bytes removing ``folder`` frees: its files that have no other name (in/ is
    hard-linked from the shared objects/, which keep them); 0 when it is gone."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        try:
            info = path.lstat()
            if path.is_file() and not path.is_symlink() and info.st_nlink == 1:
                total += info.st_size
        except OSError:  # removed while we looked
            continue
    return total
