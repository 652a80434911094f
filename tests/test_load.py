"""Under load: many submits at once, each its own process, of real scenes on this machine.

What a user checks: every submit answers with its own job id and no traceback, every job
ends FINISHED with its frames valid on disk, no job folder lacks its record (or the other
way round), nothing half-written is left, and this machine never runs more Blenders at
once than `local_workers` says, however many jobs there are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from braas_globus.collect import valid_frames_on_disk
from braas_globus.store import Store

CLI = "import sys; from braas_globus.cli import main; sys.exit(main())"


def submit_all(home: Path, blend: Path, count: int, *args: str) -> list[dict]:
    """``count`` submits started together, each a CLI process; their answers."""
    env = {**os.environ, "BRAAS_HOME": str(home)}
    processes = [subprocess.Popen([sys.executable, "-c", CLI, "submit", str(blend), "--frames",
                                   str(1 + number % 6), *args, "--json"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for number in range(count)]
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0 and "Traceback" not in err, err
        answers.append(json.loads(out if "--wait" not in args else  # then JSON lines of
                                  out.splitlines()[-1]))  # progress, the answer last
    return answers


def wait_until_all_end(store: Store, timeout: float = 1200) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = store.jobs()
        if all(job.state.is_final for job in jobs):
            return jobs
        time.sleep(1)
    raise AssertionError(f"jobs still running after {timeout} s: "
                         f"{[(j.id, j.state.value) for j in store.jobs() if not j.state.is_final]}")


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def worker_span(job_folder: Path) -> tuple[float, float]:
    """From the worker's first record to its last: while it holds its slot (the store's
    task times are written by the runner, a moment after the slot is free again)."""
    times = [json.loads(line)["time"] for path in (job_folder / "job" / "progress").glob("*")
             for line in path.read_text().splitlines()]
    return min(times), max(times)


def assert_whole(home: Path, jobs: list) -> None:
    for job in jobs:
        assert job.state.value == "FINISHED", (job.id, job.state)
        assert set(valid_frames_on_disk(job.folder / "out")) == {int(job.frames)}
    assert {p.name for p in (home / "jobs").iterdir()} == {job.id for job in jobs}
    assert not [p for p in home.rglob("*partial*")]  # no partial file, no partial folder
    assert not (home / "staging").exists() or not any((home / "staging").iterdir())


@pytest.mark.slow
@pytest.mark.timeout(900)  # 51 renders one after another: about 2 minutes on 2 cores
def test_fifty_submits_at_once_all_render_and_share_the_machine(home, scene):
    blend = scene("anim6")
    # One submit first, as a user's first try of a scene: the fifty that follow find its
    # staged copy in the stage cache (an unchanged scene starts no Blender to stage).
    first = submit_all(home, blend, 1, "--wait")
    answers = first + submit_all(home, blend, 50)
    store = Store(home / "jobs.sqlite")
    jobs = wait_until_all_end(store)
    ids = [answer["id"] for answer in answers]
    assert len(jobs) == 51 and len(set(ids)) == 51 and set(ids) == {job.id for job in jobs}
    assert_whole(home, jobs)
    renders = [worker_span(job.folder) for job in jobs]
    assert most_at_once(renders) == 1  # local_workers = 1: one Blender renders at a time


@pytest.mark.slow
def test_submits_of_a_new_scene_at_once_share_one_staged_copy(home, scene):
    blend = scene("anim6")
    answers = submit_all(home, blend, 6, "--mode", "packed")
    store = Store(home / "jobs.sqlite")
    jobs = wait_until_all_end(store)
    assert len({answer["id"] for answer in answers}) == 6
    assert_whole(home, jobs)
    # Each job's staged .blend is whole (its render came out), and the cache holds one
    # answer for the scene however many submits raced to write it.
    assert len(list((home / "cache" / "stage").glob("*.blend"))) == 1
