"""Tasks sized by time (--task-minutes): the plan rule as pure functions with given times a
frame, the resize after a scout task through the real store and policy, and real local
submits (a probe job; a scout) with PyPI bpy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braas_globus.dispatch import policy
from braas_globus.plan import (
    MAX_TASKS,
    frames_per_task,
    plan_by_time,
    plan_for_job,
    plan_for_slots,
    plan_tasks,
    scout_frames,
    task_seconds_cap,
)
from braas_globus.sizing import Sizing, read_sizing, write_sizing
from braas_globus.states import TaskState
from braas_globus.store import Store
from braas_globus.worker import job_layout
from braas_globus.worker.frames import parse_frames
from braas_globus.worker.task_limits import BLOCK_MARGIN_S

# --- the rule --------------------------------------------------------------------------


def test_a_task_holds_about_the_minutes_asked_for():
    assert frames_per_task(2.0, task_minutes=5, walltime_minutes=30) == 150
    # A task's time once (Blender, loading the scene) comes off the first: 280 s of frames.
    assert frames_per_task(2.0, 5, 30, start_seconds=20) == 140
    assert frames_per_task(7.0, 1, 30) == 9  # 60 / 7 = 8.6: about, not at most


def test_a_task_is_never_planned_past_the_walltime_less_the_margin():
    assert task_seconds_cap(30) == 30 * 60 - BLOCK_MARGIN_S
    assert frames_per_task(2.0, 30, 30) == (30 * 60 - BLOCK_MARGIN_S) // 2  # 870, not 900
    # A block of a minute keeps a quarter of it (task_limits.block_margin): 45 s to render.
    assert task_seconds_cap(1) == 45
    assert frames_per_task(1.0, 1, 1) == 45
    assert frames_per_task(7.0, 30, 30, start_seconds=100) == (1740 - 100) // 7


def test_a_frame_longer_than_the_task_is_a_task_of_its_own():
    assert frames_per_task(600.0, 1, 30) == 1
    assert frames_per_task(0.0, 1, 30) >= 1  # a frame measured at 0.0 s: no division by 0


def contiguous_cover(tasks, frames):
    """Every frame once, each task a run of neighbouring frames (persistent data)."""
    seen = [f for t in tasks for f in parse_frames(t.frames)]
    assert sorted(seen) == frames and len(seen) == len(frames)


def test_plan_by_time_splits_into_tasks_of_that_length():
    frames = list(range(1, 101))
    tasks = plan_by_time(frames, seconds_per_frame=10.0, task_minutes=1, walltime_minutes=30)
    assert len(tasks) == 17  # 6 frames a minute: ceil(100 / 6)
    assert all(t.frame_count <= 6 for t in tasks)
    contiguous_cover(tasks, frames)
    assert [t.index for t in tasks] == list(range(17))


def test_plan_by_time_with_a_scout_task_first():
    frames = list(range(1, 101))
    tasks = plan_by_time(frames, 10.0, 1, 30, scout=True)
    assert tasks[0].scout and parse_frames(tasks[0].frames) == scout_frames(frames)
    assert len(tasks) == 1 + 17  # 97 other frames, 6 a task
    assert all(t.frame_count <= 6 for t in tasks[1:])
    contiguous_cover(tasks, frames)


def test_plan_by_time_keeps_to_the_most_tasks_a_job_has():
    frames = list(range(0, 20000))
    tasks = plan_by_time(frames, 120.0, 1, 30)  # one frame a task would be 20,000 tasks
    assert len(tasks) == MAX_TASKS
    contiguous_cover(tasks, frames)


def test_without_a_measurement_the_plan_is_max_jobs():
    frames = list(range(1, 49))
    for scout in (False, True):
        fallback = plan_for_job(frames, 4, max_jobs=3, scout=scout, walltime_minutes=30,
                                task_minutes=5, seconds_per_frame=None)
        assert fallback == plan_for_slots(frames, 3, 4, scout=scout)
    # And a measurement without --task-minutes changes nothing.
    assert plan_for_job(frames, 4, max_jobs=3, scout=False, walltime_minutes=30,
                        seconds_per_frame=1.0) == plan_for_slots(frames, 3, 4)
    timed = plan_for_job(frames, 4, max_jobs=3, scout=False, walltime_minutes=30,
                         task_minutes=1, seconds_per_frame=5.0)
    assert timed == plan_by_time(frames, 5.0, 1, 30) and len(timed) == 4  # 12 a task


def test_sizing_is_written_and_read_back_strictly(tmp_path):
    (tmp_path / "job").mkdir()
    sizing = Sizing.measured(5, 30, 2.0, 20.0, "probe job X on local")
    write_sizing(tmp_path, sizing)
    assert read_sizing(tmp_path) == {"task_minutes": 5, "seconds_per_frame": 2.0,
                                     "start_seconds": 20.0, "frames_per_task": 140,
                                     "measured_by": "probe job X on local", "note": ""}
    path = tmp_path / job_layout.SIZING
    for bad in ("{", "[]", json.dumps({"task_minutes": "5"}), "x" * 10000):
        path.write_text(bad)
        assert read_sizing(tmp_path) is None


# --- the resize after the scout, through the store and the policy ------------------------


def scout_job(tmp_path: Path, frames: list[int], task_minutes: int | None) -> Store:
    """A job in a real store: a scout task and three tasks waiting for it (--max-jobs 4)."""
    store = Store(tmp_path / "jobs.sqlite")
    folder = tmp_path / "jobs" / "j"
    (folder / "job").mkdir(parents=True)
    spec = {"task_minutes": task_minutes, "walltime_minutes": 30, "retries": 2}
    store.create_job(job_id="j", project="p", preset="local", backend="local", spec=spec,
                     frames=f"{frames[0]}-{frames[-1]}", frame_count=len(frames),
                     folder=folder)
    store.add_tasks("j", plan_tasks(frames, 4, scout=True), max_attempts=3, blender={},
                    entry="in/scene.blend")
    return store


def render_scout(store: Store, seconds: float) -> None:
    (scout,) = [t for t in store.tasks("j") if t.scout]
    store.start_task("j", scout.index)
    for frame in parse_frames(scout.frames):
        store.record_frame("j", frame, scout.index, done=True,
                           file=f"out/{frame:06d}.png", seconds=seconds)
    policy.settle_attempt(store, "j", scout.index, TaskState.FINISHED)


def test_the_scout_sizes_the_tasks_that_waited_for_it(tmp_path):
    frames = list(range(1, 61))
    store = scout_job(tmp_path, frames, task_minutes=1)
    assert len(store.tasks("j")) == 4
    render_scout(store, seconds=10.0)  # 6 frames a minute
    tasks = store.tasks("j")
    rest = [f for f in frames if f not in scout_frames(frames)]
    assert [t.index for t in tasks] == list(range(len(tasks)))  # the numbers stay 0..N
    assert len(tasks) == 1 + 10 and all(t.frame_count <= 6 for t in tasks[1:])
    assert sorted(f for t in tasks[1:] for f in parse_frames(t.frames)) == rest
    assert all(t.state is TaskState.QUEUED and t.max_attempts == 3 for t in tasks[1:])
    sizing = read_sizing(tmp_path / "jobs" / "j")
    assert sizing is not None and sizing["seconds_per_frame"] == 10.0
    assert sizing["frames_per_task"] == 6 and sizing["measured_by"] == "the scout task 0"


def test_without_task_minutes_the_scout_changes_no_task(tmp_path):
    store = scout_job(tmp_path, list(range(1, 61)), task_minutes=None)
    before = [(t.index, t.frames) for t in store.tasks("j")]
    render_scout(store, seconds=10.0)
    assert [(t.index, t.frames) for t in store.tasks("j")] == before
    assert read_sizing(tmp_path / "jobs" / "j") is None


def test_a_task_started_meanwhile_keeps_the_plan(tmp_path):
    store = scout_job(tmp_path, list(range(1, 61)), task_minutes=1)
    store.start_task("j", 2)  # another process started it
    waiting = [t.index for t in store.tasks("j") if not t.scout]
    before = store.tasks("j")
    assert store.replace_waiting_tasks("j", waiting, plan_tasks(list(range(2, 60)), 9),
                                       "local", 3) is None
    assert store.tasks("j") == before


# --- real local submits -------------------------------------------------------------------


COLOUR_SCENE = Path(__file__).parent / "scenes" / "make_colour_scene.py"


@pytest.fixture
def colour_scene(tmp_path) -> Path:
    import subprocess
    import sys

    out = tmp_path / "user" / "colour.blend"
    out.parent.mkdir(parents=True)
    subprocess.run([sys.executable, str(COLOUR_SCENE), "--", str(out)], check=True,
                   capture_output=True)
    return out


def test_a_submit_sizes_its_tasks_from_a_probe_job(cli, home, colour_scene):
    result = cli("submit", colour_scene, "--task-minutes", "1", "--wait", "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    info = cli("info", job["id"], "--json").json()
    sizing = info["resources"]["sizing"]
    probe_id = sizing["measured_by"].removeprefix("probe job ").removesuffix(" on local")
    assert [j["id"] for j in cli("list", "--json").json()] == sorted([probe_id, job["id"]])
    assert info["resources"]["task_minutes"] == 1 and info["parameters"]["task_minutes"] == 1
    expected = plan_by_time(list(range(1, 7)), sizing["seconds_per_frame"], 1, 30,
                            sizing["start_seconds"])
    assert [t["frames"] for t in info["tasks"]] == [t.frames for t in expected]
    assert info["frames"]["done"] == 6
    text = cli("info", job["id"]).stdout
    assert f"(about 1 min each: {sizing['seconds_per_frame']:.2f} s a frame measured by " \
           f"probe job {probe_id} on local" in text


def test_with_scout_the_scout_task_sizes_the_rest(cli, home, colour_scene):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("local_workers = 2\n")  # a scout task of its own
    result = cli("submit", colour_scene, "--scout", "--task-minutes", "1", "--frames",
                 "1-12", "--wait", "--json")
    assert result.code == 0, result.stderr
    info = cli("info", result.json()["id"], "--json").json()
    assert len(cli("list", "--json").json()) == 1  # no probe job: the scout measured
    sizing = info["resources"]["sizing"]
    assert sizing["measured_by"] == "the scout task 0" and sizing["seconds_per_frame"] > 0
    frames = list(range(1, 13))
    rest = [f for f in frames if f not in scout_frames(frames)]
    expected = plan_by_time(rest, sizing["seconds_per_frame"], 1, 30, sizing["start_seconds"])
    assert info["tasks"][0]["scout"] and info["tasks"][0]["frames"] == "1,7,12"
    assert [t["frames"] for t in info["tasks"][1:]] == [t.frames for t in expected]
    assert info["state"] == "FINISHED" and info["frames"]["done"] == 12
