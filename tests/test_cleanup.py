"""`delete`, `clean`, `last`, ambiguous prefixes and whole ids in `list`: the CLI's small
courtesies, on jobs recorded in a real store (no render needed: the jobs are made as a
finished render leaves them, with their frame files)."""

from __future__ import annotations

import sys
import time

from braas_globus.plan import PlannedTask
from braas_globus.settings import load_settings
from braas_globus.states import TaskState
from braas_globus.store import Store

SPEC = {"scene": "scene.blend", "device": None, "walltime_minutes": 5, "max_jobs": 1,
        "allow_scripts": False, "allow_missing": False}
LONG_ID = "2026-12-01-07532216-missing-textures-in-the-courtyard-lighting-study"


def make_job(job_id: str, *, state: TaskState = TaskState.FINISHED, days_ago: float = 0.0,
             folder=None) -> Store:
    """A job of one task, frames 1-2, ended ``days_ago``, with 2 frames of 1000 bytes."""
    settings = load_settings()
    store = Store(settings.store_path)
    folder = folder or settings.jobs_dir / job_id
    (folder / "out").mkdir(parents=True, exist_ok=True)
    for frame in (1, 2):
        (folder / "out" / f"{frame:06d}.png").write_bytes(b"x" * 1000)
    store.create_job(job_id=job_id, project="p", preset="local", backend="local", spec=SPEC,
                     frames="1-2", frame_count=2, folder=folder)
    store.add_tasks(job_id, [PlannedTask(0, "1-2", 2)], max_attempts=1,
                    blender={"kind": "python", "command": [sys.executable]},
                    entry="in/scene.blend")
    when = time.time() - days_ago * 86400
    with store.transaction() as db:
        db.execute("UPDATE jobs SET created = ? WHERE id = ?", (when - 60, job_id))
    if state is not TaskState.QUEUED:
        store.start_task(job_id, 0)
    if state.is_final:
        store.end_task(job_id, 0, state)
        with store.transaction() as db:
            db.execute("UPDATE tasks SET started = ?, ended = ? WHERE job_id = ?",
                       (when - 30, when, job_id))
    return store


def job_ids(cli) -> list[str]:
    return [job["id"] for job in cli("list", "--json").json()]


def test_delete_removes_an_ended_jobs_record_and_folder_and_nothing_else(cli, home):
    make_job("2026-01-01-00000000-a")
    make_job("2026-01-02-00000000-b")
    jobs_dir = load_settings().jobs_dir
    result = cli("delete", "2026-01-01", "--yes", "--json")
    assert result.code == 0, result.stderr
    assert result.json() == {"deleted": ["2026-01-01-00000000-a"], "freed_bytes": 2000}
    assert job_ids(cli) == ["2026-01-02-00000000-b"]
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["2026-01-02-00000000-b"]
    assert cli("delete", "2026-01-01-00000000-a", "--yes").code == 2  # gone: not found


def test_delete_asks_off_a_terminal_for_yes_and_refuses_a_rendering_job(cli, home):
    make_job("2026-01-01-00000000-a")
    make_job("2026-01-02-00000000-b", state=TaskState.RUNNING)
    result = cli("delete", "2026-01-01-00000000-a")  # pytest's stdin is no terminal
    assert result.code == 2 and "give --yes" in result.stderr
    result = cli("delete", "2026-01-02-00000000-b", "--yes")
    assert result.code == 2
    # (Its runner is not there, so the refresh queues the task again: not ended either.)
    assert "is QUEUED: `braas-globus cancel 2026-01-02-00000000-b` first" in result.stderr
    assert len(job_ids(cli)) == 2
    assert all((load_settings().jobs_dir / j / "out" / "000001.png").is_file()
               for j in ("2026-01-01-00000000-a", "2026-01-02-00000000-b"))


def test_delete_never_removes_a_folder_outside_the_job_storage(cli, home, tmp_path):
    """The folder comes from the store, which a damaged or hand-edited one points anywhere."""
    precious = tmp_path / "my-project"
    make_job("2026-01-01-00000000-a", folder=precious)
    result = cli("delete", "2026-01-01-00000000-a", "--yes")
    assert result.code == 2 and "not deleting a folder outside the job storage" in result.stderr
    assert (precious / "out" / "000001.png").is_file()
    assert job_ids(cli) == ["2026-01-01-00000000-a"]


def test_clean_deletes_only_the_ended_jobs_older_than_asked(cli, home):
    make_job("2026-01-01-00000000-old", days_ago=40)
    make_job("2026-01-02-00000000-old-failed", state=TaskState.FAILED, days_ago=10)
    make_job("2026-01-03-00000000-old-queued", state=TaskState.QUEUED, days_ago=40)
    make_job("2026-01-04-00000000-recent", days_ago=1)
    dry = cli("clean", "--older-than", "7", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json() == {"would_delete": ["2026-01-01-00000000-old",
                                           "2026-01-02-00000000-old-failed"]}
    assert len(job_ids(cli)) == 4  # a dry run deletes nothing
    assert cli("clean", "--older-than", "7").code == 2  # off a terminal: --yes
    result = cli("clean", "--older-than", "7", "--yes")
    assert result.code == 0, result.stderr
    assert "deleted 2 job(s)" in result.stdout
    assert job_ids(cli) == ["2026-01-03-00000000-old-queued", "2026-01-04-00000000-recent"]
    assert cli("clean", "--older-than", "0", "--yes").code == 2


def test_last_names_the_job_submitted_last_and_a_prefix_lists_its_matches(cli, home):
    assert cli("info", "last").code == 2  # no jobs yet
    for n in range(7):
        make_job(f"2026-01-0{n + 1}-00000000-job{n}", days_ago=7 - n)
    info = cli("info", "last", "--json")
    assert info.code == 0, info.stderr
    assert info.json()["id"] == "2026-01-07-00000000-job6"
    result = cli("info", "2026-01-0")
    assert result.code == 2
    assert ("'2026-01-0' matches 7 jobs: 2026-01-01-00000000-job0, 2026-01-02-00000000-job1, "
            "2026-01-03-00000000-job2, 2026-01-04-00000000-job3, 2026-01-05-00000000-job4 and "
            "2 more; give more of the id") in result.stderr


def test_list_shows_whole_job_ids_in_80_columns(cli, home):
    """Off a terminal rich draws 80 columns: the id, which users copy, is never cut."""
    make_job(LONG_ID)
    make_job("2026-01-02-00000000-b")
    result = cli("list")
    assert result.code == 0, result.stderr
    assert "…" not in result.stdout
    flat = "".join(line.strip("│ ") for line in result.stdout.splitlines())
    assert LONG_ID in result.stdout or LONG_ID in flat.replace(" ", "")
