"""The job store's layout (its tables), and the version of it a store file holds.

The layout is written only into a new store (or one of an older layout), so opening a
store reads it and nothing more: ``list``, ``info`` and ``logs`` work on a full disk.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RunError
from .store_sqlite import GuardedConnection

#: The layout below; stored in the file's PRAGMA user_version. Bump it with any change to
#: the tables, and teach ``check_version`` to read or refuse the older layouts.
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    preset TEXT NOT NULL,
    backend TEXT NOT NULL,
    spec TEXT NOT NULL,            -- the JobSpec as JSON
    frames TEXT NOT NULL,          -- normalised frame spec of the whole job
    frame_count INTEGER NOT NULL,
    folder TEXT NOT NULL,
    created REAL NOT NULL,
    canceled INTEGER NOT NULL DEFAULT 0,
    runner_pid INTEGER,
    blender TEXT,                  -- how tasks start Blender (JSON)
    entry TEXT                     -- the staged .blend, relative to the job folder
);
CREATE TABLE IF NOT EXISTS tasks (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    frames TEXT NOT NULL,
    frame_count INTEGER NOT NULL,
    scout INTEGER NOT NULL DEFAULT 0,
    preset TEXT NOT NULL,          -- where this task renders (a job may fan out)
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backend_id TEXT,
    started REAL,
    ended REAL,
    reason TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS frames (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    state TEXT NOT NULL,           -- DONE or FAILED
    task_idx INTEGER NOT NULL,
    file TEXT,
    seconds REAL,
    reason TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (job_id, frame)
);
"""


#: Every column of each table, as ``Store.restore_job`` writes them.
RESTORED_COLUMNS = {
    "jobs": ("id", "project", "preset", "backend", "spec", "frames", "frame_count", "folder",
             "created", "canceled", "runner_pid", "blender", "entry"),
    "tasks": ("job_id", "idx", "frames", "frame_count", "scout", "preset", "state", "attempts",
              "max_attempts", "backend_id", "started", "ended", "reason"),
    "frames": ("job_id", "frame", "state", "task_idx", "file", "seconds", "reason", "updated"),
}


def check_version(db: GuardedConnection, path: Path) -> int:
    """The layout version of the store at ``path``; RunError for one this version cannot
    read, before anything is written to it."""
    version = db.pragma("user_version").integer(0)
    if version > SCHEMA_VERSION:
        raise RunError(f"the job store {path} was written by a newer braas-globus "
                       f"(layout {version}; this one reads {SCHEMA_VERSION}): upgrade "
                       "braas-globus")
    if version == 0 and table_columns(db, "jobs"):
        # Written before the layout was versioned: readable only if it already has
        # every column of layout 1 (the tasks.preset column came last).
        if "preset" not in table_columns(db, "tasks"):
            raise RunError(f"the job store {path} was written by an early "
                           "braas-globus whose tasks have no preset column; move it aside "
                           "(its jobs' frames stay in their folders) and braas-globus "
                           "starts a new one")
    return version


def table_columns(db: GuardedConnection, table: str) -> set[str]:
    return {row.text("name") for row in db.query(f"PRAGMA table_info({table})")}


def write_schema(db: GuardedConnection) -> None:
    """Make the tables and record their version; inside the caller's transaction."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
