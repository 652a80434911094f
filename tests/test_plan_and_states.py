"""Planning frames into tasks, and deriving a job's state from its tasks."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from braas_globus.plan import plan_tasks, scout_frames
from braas_globus.states import JobState, TaskState, job_state
from braas_globus.store import Store
from braas_globus.worker.frames import parse_frames


@given(st.sets(st.integers(0, 3000), min_size=1, max_size=400), st.integers(1, 50), st.booleans())
def test_plan_covers_every_frame_once_within_the_task_limit(frames, max_tasks, scout):
    ordered = sorted(frames)
    tasks = plan_tasks(ordered, max_tasks, scout=scout)
    assert len(tasks) <= max_tasks
    rendered = [f for t in tasks for f in parse_frames(t.frames)]
    assert sorted(rendered) == ordered
    assert [t.index for t in tasks] == list(range(len(tasks)))
    assert all(t.frame_count == len(parse_frames(t.frames)) for t in tasks)


def test_chunks_are_contiguous_and_balanced():
    tasks = plan_tasks(list(range(1, 101)), 3)
    assert [t.frames for t in tasks] == ["1-34", "35-67", "68-100"]


def test_scout_task_holds_first_middle_and_last_frames():
    frames = list(range(1, 251))
    tasks = plan_tasks(frames, 5, scout=True)
    assert tasks[0].scout and parse_frames(tasks[0].frames) == [1, 126, 250]
    assert scout_frames(frames) == [1, 126, 250]
    rest = [f for t in tasks[1:] for f in parse_frames(t.frames)]
    assert 1 not in rest and 126 not in rest and 250 not in rest and len(rest) == 247


def test_a_10000_frame_plan_records_rows_per_task_not_per_frame(tmp_path):
    store = Store(tmp_path / "jobs.sqlite")
    frames = list(range(1, 10001))
    store.create_job(job_id="j", project="p", preset="local", backend="local", spec={},
                     frames="1-10000", frame_count=10000, folder=tmp_path)
    tasks = plan_tasks(frames, 100, scout=True)
    store.add_tasks("j", tasks, max_attempts=3, blender={}, entry="in/x.blend")
    rows = {table: store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("tasks", "frames")}
    assert rows == {"tasks": 100, "frames": 0}
    assert store.job("j").state is JobState.QUEUED


Q, R, F, X, T, C = (TaskState.QUEUED, TaskState.RUNNING, TaskState.FINISHED, TaskState.FAILED,
                    TaskState.TIMEOUT, TaskState.CANCELED)


@pytest.mark.parametrize(
    ("tasks", "canceled", "expected"),
    [
        ([], False, JobState.CONFIGURING),
        ([Q, Q], False, JobState.QUEUED),
        ([R, Q], False, JobState.RUNNING),
        ([F, Q], False, JobState.RUNNING),  # between two tasks the job is still running
        ([F, F], False, JobState.FINISHED),
        ([F, X], False, JobState.FAILED),
        ([X, R], False, JobState.RUNNING),  # fails only once nothing can still run
        ([F, T], False, JobState.FAILED),
        ([X, C], False, JobState.FAILED),  # the scout failed, the rest never ran
        ([F, C], False, JobState.CANCELED),
        ([R, R], True, JobState.CANCELED),
    ],
)
def test_job_state_from_task_states(tasks, canceled, expected):
    assert job_state(tasks, canceled) is expected


# --- the store's layout version ------------------------------------------------------------

def test_a_new_store_records_its_layout_version(tmp_path):
    import sqlite3

    from braas_globus.store import SCHEMA_VERSION

    Store(tmp_path / "jobs.sqlite").close()
    db = sqlite3.connect(tmp_path / "jobs.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
    db.close()
    Store(tmp_path / "jobs.sqlite").close()  # and opens again


@pytest.mark.parametrize("case, expected", [
    ("newer", "was written by a newer braas-globus (layout 7; this one reads 1): upgrade"),
    ("no preset column", "tasks have no preset column; move it aside"),
    ("not sqlite", "is not a braas-globus job store (file is not a database)"),
])
def test_a_store_this_version_cannot_read_is_one_clear_error(tmp_path, cli, home, case,
                                                             expected):
    import sqlite3

    path = home / "jobs.sqlite"
    home.mkdir(parents=True, exist_ok=True)
    if case == "not sqlite":
        path.write_bytes(b"these are not the jobs you are looking for" * 100)
    else:
        db = sqlite3.connect(path)
        if case == "newer":
            db.execute("PRAGMA user_version = 7")
        else:  # an early store: tasks without the preset column, no version
            db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY)")
            db.execute("CREATE TABLE tasks (job_id TEXT, idx INTEGER, state TEXT)")
        db.commit()
        db.close()
    before = path.read_bytes()
    try:
        result = cli("list")
        assert result.code == 1
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
        assert str(path) in result.stderr
        assert path.read_bytes() == before  # nothing written to it
    finally:
        path.unlink()  # leave the test's home openable for its clean-up


CLAIM_IDS = """
import json, sys
from braas_globus.service import Service
service = Service.open()
ids = [service.claim_job_id("race", preset="local", backend="local", spec={}, frames="1",
                            frame_count=1) for _ in range(int(sys.argv[1]))]
print(json.dumps(ids))
"""


def test_job_ids_never_collide_under_concurrent_submits(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "BRAAS_HOME": str(tmp_path / "home")}
    Store(tmp_path / "home" / "jobs.sqlite").close()  # the store exists before the race
    workers = [subprocess.Popen([sys.executable, "-c", CLAIM_IDS, "60"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(8)]
    results = [worker.communicate(timeout=120) for worker in workers]
    assert [w.returncode for w in workers] == [0] * 8, [err for _, err in results]
    ids = [job_id for out, _ in results for job_id in json.loads(out)]
    assert len(ids) == 480 and len(set(ids)) == 480
    assert len(Store(tmp_path / "home" / "jobs.sqlite").jobs()) == 480
