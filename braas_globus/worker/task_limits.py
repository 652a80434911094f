"""What ends a task from outside it: the batch job's walltime, a full disk. Stdlib only.

The batch job's walltime. A task runs inside a batch job (the endpoint's "block"), which
may have started long before the task and run other tasks first; the scheduler kills it at
its own walltime, mid-frame, and then no closing record is written. So the endpoint
templates' ``worker_init`` (run once at the start of each batch job) exports

- ``BRAAS_BLOCK_END``: the job's end, epoch seconds (its start + the walltime asked for);
- ``BRAAS_BLOCK_SECONDS``: that walltime, seconds;

and the entry point (``render_task.py``) stops Blender ``margin`` seconds before
``BRAAS_BLOCK_END`` (see ``block_margin``: 60 s, a quarter of a block shorter than 4
minutes; the centre's ``BRAAS_BLOCK_MARGIN_S`` overrides it, also a knob for tests). Values that are not plain
digits are ignored; without ``BRAAS_BLOCK_END`` only the task's own walltime counts. The
closing record of a task stopped this way is TIMEOUT (exit code 4, as for the task's own
walltime) with the reason "the batch job's walltime ends in N s: stopped to leave time to
report; the missing frames are retried" and the unrendered frames as ``missing``. A task that
starts with less than the margin left does not start Blender at all and returns that record
at once. This module reads the environment (``block_end``); ``render_task.py`` keeps
the deadline and writes the record.

A full disk (``ENOSPC``, ``EDQUOT``, or less than ``FULL_BELOW_BYTES`` free) ends the
attempt with the reason "the disk holding ... is full" (``disk_full_reason``), never a
traceback.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

#: Seconds before the batch job's end at which Blender is stopped (block_margin). What must
#: fit in it: the stop itself (up to 0.25 s until the watcher sees the deadline, 3 s of grace
#: after SIGTERM before SIGKILL), the closing record appended to job/progress on the shared
#: file system (seconds when a parallel file system is loaded), the result's way back to the
#: endpoint's interchange (sub-second over ZeroMQ), and the seconds between the job's start
#: by the scheduler and worker_init's `date` (BRAAS_BLOCK_END is that much late). 60 s is
#: several times all of that, and costs at most a minute of each batch job. It does not grow
#: with the block: none of these do. The endpoint templates drain a block (no new task) 2
#: margins before its end, computed the same way (tests/test_endpoint_templates.py keeps
#: them equal).
BLOCK_MARGIN_S = 60
_DIGITS = re.compile(r"[0-9]+")


def _env_seconds(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "")
    return int(value) if _DIGITS.fullmatch(value) else None


def block_margin(block_seconds: int | None,
                 environ: Mapping[str, str] = os.environ) -> int:
    """Seconds to stop before the batch job's end: ``BRAAS_BLOCK_MARGIN_S`` if the centre
    set it, else BLOCK_MARGIN_S, but at most a quarter of a short block (a 1-minute block
    still renders for 45 s rather than never)."""
    override = _env_seconds(environ, "BRAAS_BLOCK_MARGIN_S")
    if override is not None:
        return override
    if block_seconds:
        return min(BLOCK_MARGIN_S, block_seconds // 4)
    return BLOCK_MARGIN_S


def block_end(environ: Mapping[str, str] = os.environ) -> tuple[int, int] | None:
    """(the batch job's end in epoch seconds, the margin), or None where it is not known."""
    end = _env_seconds(environ, "BRAAS_BLOCK_END")
    if end is None:
        return None
    return end, block_margin(_env_seconds(environ, "BRAAS_BLOCK_SECONDS"), environ)


FULL_BELOW_BYTES = 1 << 20  # as braas_globus.disk: below this, a disk counts as full


def is_disk_full_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_is_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW_BYTES
    except OSError:
        return False


def disk_full_reason(folder: Path, detail: str | None = "") -> str:
    return (f"the disk holding {folder} is full{f' ({detail})' if detail else ''}: free space "
            "there, then resume the job (the frames already rendered are kept)")
