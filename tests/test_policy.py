"""The task rules every backend follows (dispatch/policy.py), on a real store.

The backends' own tests show the rules at work end to end (tests/test_local_jobs.py on this
machine, tests/test_globus_backend.py through the Globus stand-ins); these pin the rules
themselves: which queued tasks may start, how an attempt's end is settled, what a cancel
marks, and that every backend is one a preset names.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from braas_globus.dispatch import BACKENDS, policy
from braas_globus.plan import PlannedTask
from braas_globus.presets import ClusterPreset, LocalPreset
from braas_globus.records import FrameRecord
from braas_globus.states import JobState, TaskState
from braas_globus.store import Store
from braas_globus.worker import job_layout

SPEC = {"scene": "scene.blend", "device": None, "walltime_minutes": 5, "max_jobs": 4,
        "allow_scripts": False, "allow_missing": False}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "jobs.sqlite")


def job_with_tasks(store: Store, tmp_path: Path, *, scout: bool, tries: int = 2,
                   presets: list[str] | None = None) -> str:
    """Job "j": tasks 0-3 of one frame each (task 0 the scout when ``scout``)."""
    store.create_job(job_id="j", project="p", preset="local", backend="local", spec=SPEC,
                     frames="1-4", frame_count=4, folder=tmp_path / "j")
    tasks = [PlannedTask(i, str(i + 1), 1, scout=scout and i == 0) for i in range(4)]
    store.add_tasks("j", tasks, max_attempts=tries,
                    blender={"kind": "python", "command": [sys.executable]},
                    entry="in/scene.blend", presets=presets)
    return "j"


def startable(store: Store, preset: str = "local") -> list[int]:
    return [t.index for t in policy.startable(store.tasks("j", preset=preset))]


def state(store: Store, index: int) -> TaskState:
    return next(t.state for t in store.tasks("j") if t.index == index)


def test_only_the_scout_starts_until_its_frames_are_done(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=True)
    assert startable(store) == [0]
    store.start_task("j", 0)
    assert startable(store) == []  # the scout renders: the rest waits
    policy.settle_attempt(store, "j", 0, TaskState.FINISHED)
    assert startable(store) == [1, 2, 3]


def test_without_a_scout_every_queued_task_may_start(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=False)
    store.start_task("j", 1)
    assert startable(store) == [0, 2, 3]


def test_a_failed_attempt_is_queued_again_while_tries_remain(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=False, tries=2)
    store.start_task("j", 2)
    assert policy.settle_attempt(store, "j", 2, TaskState.TIMEOUT, "walltime") is True
    task = store.tasks("j")[2]
    assert (task.state, task.reason) == (TaskState.QUEUED, "attempt 1 timeout: walltime")
    store.start_task("j", 2)
    assert policy.settle_attempt(store, "j", 2, TaskState.FAILED, "Blender crashed") is False
    assert (state(store, 2), store.tasks("j")[2].reason) == (TaskState.FAILED,
                                                             "Blender crashed")


def test_a_canceled_attempt_is_not_tried_again(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=False, tries=3)
    store.start_task("j", 0)
    assert policy.settle_attempt(store, "j", 0, TaskState.CANCELED) is False
    assert state(store, 0) is TaskState.CANCELED


def test_a_scout_that_fails_for_good_stops_the_rest_of_its_preset_only(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=True, tries=1,
                   presets=["local", "local", "local", "karolina"])
    store.start_task("j", 0)
    policy.settle_attempt(store, "j", 0, TaskState.FAILED, "no GPU")
    assert [state(store, i) for i in range(4)] == [TaskState.FAILED, TaskState.CANCELED,
                                                   TaskState.CANCELED, TaskState.QUEUED]
    assert store.tasks("j")[1].reason == "not rendered: the scout frames failed"
    assert startable(store, "karolina") == [3]  # another centre has its own tasks


def test_a_frame_record_is_applied_as_the_worker_said(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=False)
    done = FrameRecord(event="frame", task=1, frame=2, state="done", file="out/000002.png",
                       seconds=1.5)
    failed = FrameRecord(event="frame", task=2, frame=3, state="failed", reason="out of memory")
    policy.apply_frame_record(store, "j", 1, done)
    policy.apply_frame_record(store, "j", 2, failed)
    rows = {r["frame"]: dict(r) for r in store.frames("j")}
    assert (rows[2]["state"], rows[2]["file"], rows[2]["seconds"], rows[2]["task_idx"]) == \
        ("DONE", "out/000002.png", 1.5, 1)
    assert (rows[3]["state"], rows[3]["reason"]) == ("FAILED", "out of memory")
    job = store.job("j")
    assert (job.frames_done, job.frames_failed) == (1, 1)


def test_a_cancel_marks_the_job_and_leaves_its_marker_for_the_backends(store, tmp_path):
    job_with_tasks(store, tmp_path, scout=False)
    store.start_task("j", 0)
    policy.settle_attempt(store, "j", 0, TaskState.FINISHED)
    store.start_task("j", 1)
    policy.mark_canceled(store, store.job("j"))
    assert (tmp_path / "j" / job_layout.CANCEL).is_file()  # what a centre gets by Transfer
    assert [state(store, i) for i in range(4)] == [TaskState.FINISHED] + [TaskState.CANCELED] * 3
    assert store.job("j").state is JobState.CANCELED
    assert startable(store) == []


def test_every_preset_kind_names_a_registered_backend():
    kinds = {LocalPreset.model_fields["backend"].default,
             ClusterPreset.model_fields["backend"].default}
    assert kinds == set(BACKENDS)
