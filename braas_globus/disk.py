"""Writing to disk: a file is written whole or not at all (``write_atomically``), and a
full disk is said in one line: which disk, what was being written, how much was needed,
what to do. Used by the store, the stager, the runner and the CLI (the worker, stdlib
only, has its own few lines in ``worker/task_limits.py``)."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeGuard

from .errors import RunError
from .settings import braas_home

#: Below this much free space a disk counts as full: SQLite, the worker and the stager
#: fail there with "disk I/O error" or a short write rather than always with ENOSPC.
FULL_BELOW_BYTES = 1 << 20


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(partial)``, then rename it to ``path``: never a half-written ``path``, and on
    a failure (a full disk) no partial file left behind either. Each writer has its own
    partial name, so processes writing the same file at once (submits of one scene, two
    jobs staging one texture) never write into each other's."""
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class DiskFullError(RunError):
    """A write failed because its disk is full; the message names the disk and the need."""


def free_bytes(path: Path) -> int | None:
    """Free space on the disk holding ``path`` (or its nearest existing folder)."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def disk_is_full(path: Path) -> bool:
    free = free_bytes(path)
    return free is not None and free < FULL_BELOW_BYTES


def is_disk_full_error(err: BaseException) -> TypeGuard[OSError]:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(folder: Path, what: str = "", needed: int | None = None) -> str:
    """One line: which disk is full, what it was writing, how much was needed, what to do."""
    free = free_bytes(folder)
    details = [f"writing {what}"] if what else []
    details += [f"{needed:,} bytes needed"] if needed is not None else []
    details += [f"{free:,} bytes free"] if free is not None else []
    return (f"the disk holding {folder} is full ({', '.join(details)}): free space there, "
            "then retry")


def disk_full_error(err: OSError, needed: int | None = None) -> DiskFullError:
    """The DiskFullError for an ENOSPC OSError, naming the file it was writing where the
    error says (a copy's destination is its second file name), else BRAAS_HOME's disk."""
    written = err.filename2 or err.filename
    if written:
        path = Path(os.fsdecode(written))
        return DiskFullError(disk_full_message(path.parent, what=path.name, needed=needed))
    home = braas_home()
    if disk_is_full(home):
        return DiskFullError(disk_full_message(home, needed=needed))
    return DiskFullError(f"a disk is full ({err.strerror}): free space, then retry")


def disk_full_in(err: BaseException) -> DiskFullError | None:
    """The DiskFullError for an ENOSPC OSError that is ``err`` or is behind it."""
    seen: BaseException | None = err
    for _ in range(10):  # a chain of causes, never a cycle
        if seen is None:
            return None
        if isinstance(seen, OSError) and is_disk_full_error(seen):
            return disk_full_error(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def home_disk_full() -> DiskFullError | None:
    """A DiskFullError when BRAAS_HOME's disk is full: the likely cause of an error that
    BAT or Blender reports in words."""
    home = braas_home()
    return DiskFullError(disk_full_message(home)) if disk_is_full(home) else None
