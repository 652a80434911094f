"""Whole jobs on the embedded local backend, driven through the CLI, with real Blender."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from braas_globus.settings import load_settings
from braas_globus.store import Store
from braas_globus.worker.image_check import is_valid_image

from .conftest import frame_files, mean_alpha, stop_runners, wait_for

STAND_IN = Path(__file__).parent / "stand_ins" / "flaky_blender.py"


def store() -> Store:
    return Store(load_settings().store_path)


def job_info(cli, job_id: str) -> dict:
    result = cli("info", job_id, "--json")
    assert result.code == 0, result.stderr
    return result.json()


def submit(cli, scene: Path, *args: str, wait: bool = True) -> dict:
    result = cli("submit", scene, *args, *(["--wait"] if wait else []), "--json")
    assert result.code in (0, 1), result.stderr
    return result.json()


def wait_until_final(cli, job_id: str, timeout: float = 120) -> dict:
    final = ("FINISHED", "FAILED", "CANCELED")
    return wait_for(lambda: (info := job_info(cli, job_id))["state"] in final and info,
                    timeout=timeout, interval=0.3, what=f"job {job_id} to end")


@pytest.fixture
def flaky_blender(tmp_path, monkeypatch):
    """Make the stand-in the `blender` executable; returns its argv log."""
    wrapper = tmp_path / "blender"
    wrapper.write_text(f"#!{sys.executable}\n" + STAND_IN.read_text())
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "flaky-calls.jsonl"
    monkeypatch.setenv("BRAAS_BLENDER", str(wrapper))
    monkeypatch.setenv("FLAKY_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
    def render_calls() -> list[list[str]]:
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return [argv for argv in calls if argv[argv.index("-P") + 1].endswith("blender_render.py")]

    return render_calls


def test_submit_and_wait_renders_every_frame(cli, scene, home):
    job = submit(cli, scene("anim6"), "--project", "my shot/1")
    assert job["state"] == "FINISHED" and job["frames_done"] == 6
    assert job["id"].endswith("-my_shot_1")  # the original's naming rule
    folder = Path(job["folder"])
    assert folder.parent == home / "jobs"
    assert sorted(p.name for p in folder.iterdir()) == ["in", "job", "log", "out"]
    assert frame_files(folder) == [f"{n:06d}.png" for n in range(1, 7)]
    assert all(is_valid_image(p) for p in (folder / "out").iterdir() if p.is_file())

    info = job_info(cli, job["id"])
    assert info["frames"] == {"total": 6, "done": 6, "failed": 0, "by_state": {"DONE": "1-6"}}
    assert info["submitted"] <= info["started"] <= info["ended"]
    assert info["parameters"]["walltime_minutes"] == 30 and info["resources"]["tasks"] == 1
    assert info["resources"]["device"] == "CPU"  # the local preset's: the job named none
    assert Path(info["last_frame"]["file"]).is_file()
    assert [j["id"] for j in cli("list", "--json").json()] == [job["id"]]
    assert "attempt 1" in cli("logs", job["id"], "--json").json()["task-0000.log"]

    copy = cli("download", job["id"], "--to", home.parent / "downloads", "--json").json()
    assert copy["frames_valid"] == 6 and copy["missing"] == ""
    assert frame_files(home.parent / "downloads" / job["id"]) == frame_files(folder)


def test_submit_returns_at_once_and_the_job_runs_on(cli, scene):
    result = cli("submit", scene("anim6"), "--frames", "2-5", "--json")
    assert result.code == 0
    job = result.json()
    assert job["state"] in ("QUEUED", "RUNNING") and job["frames"] == "2-5"
    assert wait_until_final(cli, job["id"])["state"] == "FINISHED"
    assert frame_files(Path(job["folder"])) == [f"{n:06d}.png" for n in range(2, 6)]


def test_image_renders_the_current_frame_only(cli, scene):
    job = submit(cli, scene("anim6"), "--image")
    assert job["state"] == "FINISHED" and job["frames"] == "1"


def test_demo_renders_and_says_where_the_frames_are(cli, home):
    result = cli("demo")
    assert result.code == 0, result.stderr
    folder = next((home / "jobs").iterdir())
    assert f"frames are in {folder / 'out'}" in result.stderr
    assert len(frame_files(folder)) == 24


def test_resume_renders_only_missing_frames(cli, scene):
    job = submit(cli, scene("anim6"))
    out = Path(job["folder"]) / "out"
    (out / "000002.png").unlink()
    (out / "000005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    untouched = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")
                 if p.name not in ("000002.png", "000005.png")}

    result = cli("resume", job["id"], "--wait", "--json")
    assert result.code == 0 and result.json()["state"] == "FINISHED"
    assert all(is_valid_image(out / f"{n:06d}.png") for n in range(1, 7))
    assert {name: (out / name).stat().st_mtime_ns for name in untouched} == untouched
    starts = [json.loads(line) for line in
              (Path(job["folder"]) / "job" / "progress" / "task-0000.jsonl").read_text().splitlines()
              if '"start"' in line]
    assert starts[-1]["pending"] == "2,5" and starts[-1]["skipped"] == "1,3,4,6"
    assert cli("resume", job["id"], "--json").json()["state"] == "FINISHED"  # nothing to do


def test_cancel_stops_every_process_of_the_job(cli, scene):
    job = submit(cli, scene("anim6"), "--frames", "1-600", wait=False)
    folder = Path(job["folder"])
    wait_for(lambda: len(frame_files(folder)) >= 2, what="two frames")
    runner = store().job(job["id"]).runner_pid

    asked = time.monotonic()
    result = cli("cancel", job["id"], "--json")
    assert result.code == 0 and result.json()["state"] == "CANCELED"
    assert time.monotonic() - asked < 10
    assert not _processes_in_group(runner)
    count = len(frame_files(folder))
    time.sleep(2)
    assert len(frame_files(folder)) == count < 600
    info = job_info(cli, job["id"])
    assert info["state"] == "CANCELED" and info["ended"]
    assert "CANCELED" in info["frames"]["by_state"]


def _processes_in_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_a_crashed_task_is_retried_and_renders_only_what_is_missing(cli, scene, flaky_blender,
                                                                    monkeypatch, tmp_path):
    monkeypatch.setenv("FLAKY_CRASH_AFTER", "2")
    monkeypatch.setenv("FLAKY_STATE", str(tmp_path / "flaky-state"))
    job = submit(cli, scene("anim6"))
    assert job["state"] == "FINISHED" and job["frames_done"] == 6
    calls = flaky_blender()
    assert len(calls) == 2
    # The executable is started the safe way: no user settings, no scripts from the .blend.
    assert {"-b", "--factory-startup", "--disable-autoexec"} <= set(calls[0])
    frames_of = [call[call.index("--frames") + 1] for call in calls]
    assert frames_of == ["1-6", "3-6"]
    task = job_info(cli, job["id"])["tasks"][0]
    assert task["attempts"] == 2 and task["state"] == "FINISHED"


def test_a_frame_failing_every_try_fails_the_job_naming_frame_and_reason(cli, scene,
                                                                          flaky_blender,
                                                                          monkeypatch):
    monkeypatch.setenv("FLAKY_DROP_FRAME", "4")
    result = cli("submit", scene("anim6"), "--retries", "1", "--wait", "--json")
    assert result.code == 1
    assert "frame 4: Error: out of memory rendering frame 4" in result.stderr
    info = job_info(cli, result.json()["id"])
    assert info["state"] == "FAILED"
    assert [(f["frame"], "out of memory" in f["reason"]) for f in info["failed_frames"]] == \
        [(4, True)]
    assert info["tasks"][0]["attempts"] == 2
    assert info["frames"]["by_state"] == {"DONE": "1-3,5,6", "FAILED": "4"}
    assert len(flaky_blender()) == 2


def scout_first(job_id: str, scouts: tuple[int, ...]) -> bool:
    rows = store().frames(job_id)
    scout_done = max(r["updated"] for r in rows if r["frame"] in scouts)
    return all(r["updated"] > scout_done for r in rows if r["frame"] not in scouts)


def test_with_one_slot_the_scout_frames_render_first_in_the_same_blender(cli, scene,
                                                                         flaky_blender):
    job = submit(cli, scene("anim12"), "--scout")
    assert job["state"] == "FINISHED" and job["frames_done"] == 12
    tasks = job_info(cli, job["id"])["tasks"]
    assert [(t["scout"], t["frames"]) for t in tasks] == [(True, "1-12")]
    assert scout_first(job["id"], (1, 7, 12))
    calls = flaky_blender()
    assert len(calls) == 1 and calls[0][calls[0].index("--first") + 1] == "1,7,12"


def test_with_max_jobs_1_the_scout_frames_still_render_first(cli, scene, home):
    (home).mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("local_workers = 2\n")
    job = submit(cli, scene("anim12"), "--scout", "--max-jobs", "1")
    assert job["state"] == "FINISHED"
    assert [t["scout"] for t in job_info(cli, job["id"])["tasks"]] == [True]
    assert scout_first(job["id"], (1, 7, 12))


def test_with_two_slots_the_scout_task_renders_alone_first(cli, scene, home):
    (home).mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("local_workers = 2\n")
    job = submit(cli, scene("anim12"), "--scout")
    assert job["state"] == "FINISHED"
    info = job_info(cli, job["id"])
    assert info["tasks"][0]["scout"] and info["tasks"][0]["frames"] == "1,7,12"
    assert len(info["tasks"]) == 3
    assert scout_first(job["id"], (1, 7, 12))


def test_a_failed_scout_frame_stops_the_rest_of_the_job(cli, scene, flaky_blender,
                                                         monkeypatch):
    monkeypatch.setenv("FLAKY_FAIL_FRAME", "7")
    result = cli("submit", scene("anim12"), "--scout", "--retries", "0", "--wait", "--json")
    assert result.code == 1
    info = job_info(cli, result.json()["id"])
    assert info["state"] == "FAILED"
    reasons = {f["frame"]: f["reason"] for f in info["failed_frames"]}
    assert reasons.pop(7) == "Error: failed to denoise (test stand-in)"
    assert sorted(reasons) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert all("stopped after frame 7 failed" in r for r in reasons.values())
    assert frame_files(Path(info["folder"])) == ["000001.png"]  # 1, then 7 failed: stop
    assert len(flaky_blender()) == 1


def test_a_failed_frame_never_leaves_later_frames_blank(cli, scene, flaky_blender,
                                                        monkeypatch):
    monkeypatch.setenv("FLAKY_FAIL_FRAME", "3")
    result = cli("submit", scene("anim6"), "--retries", "0", "--wait", "--json")
    assert result.code == 1
    info = job_info(cli, result.json()["id"])
    assert info["frames"]["by_state"] == {"DONE": "1,2,4-6", "FAILED": "3"}
    assert "failed to denoise" in info["failed_frames"][0]["reason"]
    calls = flaky_blender()  # the frames after the error, in a fresh Blender
    assert [c[c.index("--frames") + 1] for c in calls] == ["1-6", "4-6"]
    frames = sorted((Path(info["folder"]) / "out").glob("*.png"))
    assert len(frames) == 5 and min(mean_alpha(frames)) > 0.2


def test_a_blender_without_the_denoiser_is_refused_at_submit(cli, scene, home,
                                                            flaky_blender, monkeypatch):
    monkeypatch.setenv("FLAKY_NO_DENOISER", "1")
    result = cli("submit", scene("denoised"))
    assert result.code == 2
    assert "OpenImageDenoise" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())
    assert cli("list", "--json").json() == []


def test_the_submit_check_judges_denoising_as_the_job_renders_it(cli, scene, home,
                                                                 flaky_blender, monkeypatch):
    # A Blender without OpenImageDenoise: --no-denoise renders the denoising scene, and
    # --denoise on a scene that does not denoise is refused at submit, not by the worker.
    monkeypatch.setenv("FLAKY_NO_DENOISER", "1")
    done = cli("submit", scene("denoised"), "--no-denoise", "--wait", "--json")
    assert done.code == 0, done.stderr
    assert len(frame_files(Path(job_info(cli, done.json()["id"])["folder"]))) == 3
    refused = cli("submit", scene("anim6"), "--denoise")
    assert refused.code == 2 and "OpenImageDenoise" in refused.stderr
    assert "Traceback" not in refused.stderr and len(cli("list", "--json").json()) == 1


def test_missing_assets_refused_unless_allowed(cli, scene, home):
    blend = scene("missing")
    refused = cli("submit", blend)
    assert refused.code == 2
    assert "textures/missing/not_there.png" in refused.stderr
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())
    job = submit(cli, blend, "--allow-missing")
    assert job["state"] == "FINISHED" and job["frames_done"] == 3


def killed_while_configuring(blend: Path, home: Path) -> bool:
    """Submit in a process of its own, stop it (SIGSTOP) as soon as its job record is there,
    and kill it: True when it was still configuring (its tasks not recorded yet), False when
    it had got past that first (a small scene configures in a fraction of a second)."""
    process = subprocess.Popen([sys.executable, "-m", "braas_globus.cli", "submit", str(blend),
                                "--mode", "packed"], env={**os.environ, "BRAAS_HOME": str(home)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = home / "jobs.sqlite"

    def count(table: str) -> int:
        try:
            with sqlite3.connect(db_path) as db:
                return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:  # the store is not created yet
            return 0

    wait_for(lambda: count("jobs") > 0, timeout=30, interval=0.01, what="the job record")
    process.send_signal(signal.SIGSTOP)  # frozen where it is, then killed there
    configuring = count("tasks") == 0
    process.send_signal(signal.SIGKILL)
    process.wait()
    return configuring


def test_a_killed_submit_leaves_a_consistent_store_and_the_job_resumes(scene, home, cli,
                                                                       monkeypatch):
    blend = scene("anim6")
    for attempt in range(10):  # until a kill lands while the job configures (packs, stages)
        try_home = home.parent / f"braas-home-{attempt}"
        if killed_while_configuring(blend, try_home):
            break
        stop_runners(try_home)
    else:
        pytest.fail("10 submits got past configuring before they could be stopped")
    monkeypatch.setenv("BRAAS_HOME", str(try_home))
    try:
        with sqlite3.connect(try_home / "jobs.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        jobs = cli("list", "--json").json()
        assert len(jobs) == 1 and jobs[0]["state"] == "CONFIGURING"
        result = cli("resume", jobs[0]["id"], "--wait", "--json")
        assert result.code == 0, result.stderr
        assert result.json()["state"] == "FINISHED" and result.json()["frames_done"] == 6
    finally:
        stop_runners(try_home)


def test_a_killed_runner_is_reported_and_the_job_resumes(cli, scene):
    job = submit(cli, scene("anim6"), "--frames", "1-40", wait=False)
    folder = Path(job["folder"])
    wait_for(lambda: len(frame_files(folder)) >= 2, what="two frames")
    os.killpg(store().job(job["id"]).runner_pid, signal.SIGKILL)
    time.sleep(0.5)
    result = cli("info", job["id"], "--json")
    assert "resume" in result.json()["warning"]
    assert result.json()["state"] in ("QUEUED", "RUNNING")
    done = cli("resume", job["id"], "--wait", "--json")
    assert done.code == 0 and done.json()["frames_done"] == 40


def stage_calls(calls_log: Path) -> int:
    calls = [json.loads(line) for line in calls_log.read_text().splitlines()]
    return sum(argv[argv.index("-P") + 1].endswith("stage_scene.py") for argv in calls)


@pytest.mark.parametrize("mode", ["directory", "packed"])
def test_an_unchanged_scene_starts_no_blender_at_its_next_submit(cli, scene, flaky_blender,
                                                                 tmp_path, mode):
    blend = scene("anim6")
    log = tmp_path / "flaky-calls.jsonl"
    for _ in range(2):
        assert submit(cli, blend, "--mode", mode, "--frames", "1")["state"] == "FINISHED"
    assert stage_calls(log) == 1  # the second submit reused Blender's account
    texture = blend.parent / "textures" / "ground" / "grid.png"
    texture.write_bytes(texture.read_bytes() + b"\0")  # the artist changes a texture
    assert submit(cli, blend, "--mode", mode, "--frames", "1")["state"] == "FINISHED"
    assert stage_calls(log) == 2


def test_resume_of_a_job_that_is_rendering_is_refused_and_changes_nothing(cli, scene):
    job = submit(cli, scene("anim6"), "--frames", "1-400", wait=False)
    wait_for(lambda: job_info(cli, job["id"])["tasks"][0]["state"] == "RUNNING",
             what="the task to run")
    before = job_info(cli, job["id"])["tasks"][0]
    result = cli("resume", job["id"])
    assert result.code == 2
    assert "still rendering" in result.stderr and "cancel" in result.stderr
    after = job_info(cli, job["id"])["tasks"][0]
    assert (after["state"], after["attempts"], after["started"]) == \
        ("RUNNING", before["attempts"], before["started"])
    assert cli("cancel", job["id"]).code == 0
