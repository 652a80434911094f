"""Render tasks through a real GlobusComputeEngine built from OUR endpoint templates.

Real here: the Karolina (Slurm) and Polaris (PBS Pro) templates rendered by
globus-compute-endpoint's own renderer after the strict schema check, the engine its config
loader builds, `sbatch` / `qsub` (through the PBS front end and its qstat adapter) on the
single-node Slurm, the worker pool inside the batch job, `render_on_worker` shipped by source,
the stdlib worker entry point, and real Blender (PyPI bpy; in one test, the render image
built from container/Apptainer.def, run by Apptainer). Only the Globus cloud relay is
bypassed: each task is packed as the service hands it to an endpoint and given to
`engine.submit`, as the endpoint does with a task it received from the cloud
(tests/engines.py).

The template edits an admin makes, and what is adapted because this is one 2-core node, are
listed once, with the reasons, in tests/engines.py (ADMIN_SETTINGS, ADAPTATIONS).
The engine tests are skipped, with the reason, where Slurm is not running; the last two
tests need no scheduler.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from braas_globus.dispatch.compute_task import render_on_worker
from braas_globus.worker.frames import parse_frames
from braas_globus.worker.image_check import is_valid_image
from tests.conftest import build_scene, wait_for
from tests.engines import (
    ADMIN_SETTINGS,
    REPO,
    VENV_BIN,
    OfflineEndpoint,
    RemoteError,
    blender_processes,
    build_engine,
    image_settings,
    make_job_root,
    render_task,
    source_serializer,
)
from tests.schedulers import SLURM_FINAL_STATES, SlurmCluster, slurm_job

# A block may queue behind other jobs on this one node (other tests, other users).
pytestmark = pytest.mark.timeout(300)

#: What a user sends to each centre's endpoint (checked against the centre's schema).
KAROLINA_USER = {"account": "DD-24-1", "partition": "qcpu_exp", "walltime_minutes": 10}
POLARIS_USER = {"account": "BRaaS_render", "partition": "debug", "walltime_minutes": 10}

RESULT_LIMIT = 10_000  # bytes: a result is a small record; frames travel by Transfer


@contextmanager
def endpoint(cluster: str, user: dict, folder: Path,
             settings: dict[str, str] = ADMIN_SETTINGS) -> Iterator[OfflineEndpoint]:
    """A started engine for `cluster`; shut down (blocks cancelled) on the way out."""
    with pytest.MonkeyPatch.context() as mp:
        # The endpoint's own environment: the interchange is `globus-compute-endpoint`.
        mp.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        with OfflineEndpoint(build_engine(cluster, user, folder, settings),
                             folder / "run") as ep:
            yield ep


@pytest.fixture(scope="class")
def karolina(slurm_cluster: SlurmCluster, tmp_path_factory) -> Iterator[OfflineEndpoint]:
    """One Karolina endpoint for the tests of TestKarolinaEndpoint, which leave its block alive.

    Class scope: its block is `exclusive`, so it must be gone before the next test's block
    can start on this one node.
    """
    with endpoint("karolina", KAROLINA_USER, tmp_path_factory.mktemp("karolina")) as ep:
        yield ep


@pytest.fixture(scope="module")
def heavy_scene(tmp_path_factory) -> Path:
    """12 frames of a few seconds each on 2 cores: long enough to stop Blender mid-frame."""
    return build_scene(tmp_path_factory.mktemp("heavy"), "--frames", "12",
                       "--width", "320", "--height", "240", "--samples", "512")


def slow_frames_scene(folder: Path, frames: int, seconds: float) -> Path:
    """A scene whose every frame takes ``seconds`` of wall-clock time, however busy the cores.

    A real .blend with a script in it (a render_pre handler that sleeps): Blender runs it
    only for a task that allows scripts. CPU-heavy frames would make a test that must fit
    frames into a 1-minute batch job depend on what else runs on this machine's 2 cores.
    """
    scene = build_scene(folder, "--frames", str(frames))
    add = folder.parent / f"{folder.name}-add-slow-frames.py"
    add.write_text(f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(scene)!r})
text = bpy.data.texts.new("slow_frames.py")
text.write("import time\\nimport bpy\\n\\n\\ndef slow(*_):\\n    time.sleep({seconds})\\n\\n\\n"
           "bpy.app.handlers.render_pre.append(slow)\\n")
text.use_module = True  # runs when the file loads, if the task allows scripts
bpy.ops.wm.save_mainfile()
""")
    subprocess.run([sys.executable, str(add)], check=True, capture_output=True, timeout=120)
    return scene


def frames_in(root: Path) -> list[str]:
    """Files in out/; Blender writes into out/.partial-PID/ and moves each finished frame out."""
    return sorted(p.name for p in (root / "out").iterdir() if not p.name.startswith("."))


def progress(root: Path, task: int = 0) -> list[dict]:
    path = root / "job" / "progress" / f"task-{task:04d}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rendered_frames(root: Path) -> int:
    return sum(1 for r in progress(root) if r["event"] == "frame" and r["state"] == "done")


def block_files(ep: OfflineEndpoint, kind: str) -> str:
    """The engine's batch scripts (kind "script") or their "stdout" / "stderr" files, joined."""
    files = sorted((ep.run_dir / "submit_scripts").glob("parsl.*"))
    streams = {".stdout", ".stderr"}
    return "".join(p.read_text() for p in files
                   if p.suffix == f".{kind}" or (kind == "script" and p.suffix not in streams))


def squeue_fields(job_id: str) -> list[str]:
    proc = subprocess.run(["squeue", "--noheader", "-j", job_id, "-o", "%P|%a|%l|%T"],
                          capture_output=True, text=True, timeout=15, check=False)
    return proc.stdout.strip().split("|")


def assert_finished_frames(record: dict, packed: bytes, root: Path, frames: range,
                           task: int = 0) -> None:
    assert record["state"] == "FINISHED", record
    assert (record["missing"], record["exit_code"]) == ("", 0), record
    assert len(packed) < RESULT_LIMIT, f"result is {len(packed)} bytes"
    assert frames_in(root) == [f"{f:06d}.png" for f in frames]
    assert all(is_valid_image(root / "out" / f"{f:06d}.png") for f in frames)
    assert progress(root, task)[-1]["state"] == "FINISHED"


# --- Slurm: Karolina's template ----------------------------------------------------------------


@pytest.mark.slow
class TestKarolinaEndpoint:
    """Tasks on one Karolina endpoint whose block stays up between them (as in production)."""

    def test_karolina_render_task_runs_in_a_real_sbatch_job(self, karolina, scene, tmp_path):
        """6 frames through sbatch: the block has the user's partition, account and walltime.

        Real sbatch, worker pool and Blender; only the Globus cloud relay is bypassed.
        """
        source = scene("anim6")
        root = make_job_root(tmp_path / "job", source)
        future = karolina.submit(render_on_worker, render_task(root, source, "1-6"), str(root))
        record, packed = karolina.result(future, timeout=200)

        assert_finished_frames(record, packed, root, range(1, 7))
        # The endpoint reports which batch job ran the task (monitoring messages).
        job_id = str(wait_for(lambda: future.job_id, timeout=15, what="the task's block id"))
        assert job_id in karolina.job_ids()
        job = slurm_job(job_id)
        assert job["JobName"].startswith("parsl.")
        assert job["Partition"] == "qcpu_exp"
        assert job["Account"] == "dd-24-1"  # Slurm stores account names in lower case
        assert job["TimeLimit"] == "00:10:00"
        assert job["JobState"] == "RUNNING"  # the block waits for more work until idle
        assert job["OverSubscribe"] == "NO"  # the template's exclusive: true
        assert squeue_fields(job_id) == ["qcpu_exp", "dd-24-1", "10:00", "RUNNING"]
        script = block_files(karolina, "script")
        assert "#SBATCH --partition=qcpu_exp\n" in script
        assert "#SBATCH --account=DD-24-1\n" in script
        # The centre lines that cannot work here failed harmlessly: worker_init runs before
        # `set -e`, and the task above finished.
        assert "module: command not found" in block_files(karolina, "stderr")

    def test_walltime_stops_blender_and_reports_timeout(self, karolina, heavy_scene, tmp_path):
        """A task over its walltime comes back TIMEOUT, with the frames it did not render.

        Real Slurm block and Blender; only the Globus cloud relay is bypassed.
        """
        root = make_job_root(tmp_path / "job", heavy_scene)
        task = render_task(root, heavy_scene, "1-12", walltime_seconds=4)
        record, packed = karolina.result(karolina.submit(render_on_worker, task, str(root)), 200)

        assert record["state"] == "TIMEOUT", record
        assert record["exit_code"] == 4
        assert record["reason"] == "walltime of 4 s exceeded"
        done = frames_in(root)
        assert len(done) < 12 and all(is_valid_image(root / "out" / name) for name in done)
        missing = parse_frames(record["missing"])
        assert sorted(missing + [int(n.split(".")[0]) for n in done]) == list(range(1, 13))
        records = progress(root)
        started = next(r["time"] for r in records if r["event"] == "start")  # the walltime's 0
        ran = records[-1]["time"] - started
        assert 4 <= ran < 4 + 5, f"the task was stopped {ran:.1f} s after it started"
        assert len(packed) < RESULT_LIMIT
        assert blender_processes(str(root)) == []

    def test_cancel_marker_stops_a_render_within_seconds(self, karolina, heavy_scene, tmp_path):
        """job/CANCEL while Blender renders: CANCELED comes back in seconds, no Blender is left.

        Real Slurm block and Blender; only the Globus cloud relay is bypassed.
        """
        root = make_job_root(tmp_path / "job", heavy_scene)
        task = render_task(root, heavy_scene, "1-12")
        future = karolina.submit(render_on_worker, task, str(root))
        wait_for(lambda: rendered_frames(root) >= 1, timeout=200, what="a first rendered frame")
        assert blender_processes(str(root)), "Blender should be rendering the next frame"

        (root / "job" / "CANCEL").touch()
        canceled_at = time.monotonic()
        record, _packed = karolina.result(future, timeout=30)
        took = time.monotonic() - canceled_at

        assert record["state"] == "CANCELED", record
        assert (record["exit_code"], record["reason"]) == (3, "the job was canceled")
        assert took < 5, f"the result came back {took:.1f} s after the cancel marker"
        assert record["missing"], "frames after the cancel must be reported missing"
        assert blender_processes(str(root)) == []
        count = len(frames_in(root))
        time.sleep(1.5)
        assert len(frames_in(root)) == count, "frames kept appearing after the cancel"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["scancel the block", "shut the engine down"])
def test_killing_the_block_mid_render_leaves_no_blender(how, slurm_cluster, heavy_scene,
                                                        tmp_path):
    """The scheduler (or the endpoint) ends the batch job: Blender goes with it.

    Real scancel (the engine's own on shutdown) and Blender; only the cloud relay is bypassed.
    """
    root = make_job_root(tmp_path / "job", heavy_scene)
    with endpoint("karolina", KAROLINA_USER, tmp_path / "endpoint") as ep:
        ep.submit(render_on_worker, render_task(root, heavy_scene, "1-12"), str(root))
        wait_for(lambda: blender_processes(str(root)), timeout=200, what="Blender to start")
        (job_id,) = ep.job_ids()
        if how == "scancel the block":
            subprocess.run(["scancel", job_id], check=True, timeout=30)
        else:
            ep.shutdown()
        stopped_at = time.monotonic()
        wait_for(lambda: not blender_processes(str(root)), timeout=20,
                 what=f"Blender to stop after we {how}")
        took = time.monotonic() - stopped_at
        wait_for(lambda: slurm_job(job_id)["JobState"] in SLURM_FINAL_STATES, timeout=30,
                 what="the block to end")
    assert slurm_job(job_id)["JobState"] == "CANCELLED"
    assert took < 15, f"Blender ran {took:.1f} s after the block was cancelled"
    # Slurm's SIGTERM with no cancel marker is not a cancel: the records say what it was,
    # and the missing frames are retried.
    last = progress(root)[-1]
    assert last["state"] == "FAILED" and "SIGTERM without a cancel" in last["reason"], last
    count = len(frames_in(root))
    time.sleep(1.5)
    assert len(frames_in(root)) == count


@pytest.mark.slow
@pytest.mark.timeout(900)  # may wait for render_image's build
def test_karolina_renders_in_the_centres_image(slurm_cluster, render_image, scene, tmp_path):
    """The production layout: the template's braas_image set, Blender and the worker code
    from the render image, each task one `apptainer exec --contain` inside the sbatch job.

    Real sbatch, worker pool, Apptainer, image and Blender; only the cloud relay is bypassed.
    """
    source = scene("anim6")
    root = make_job_root(tmp_path / "job", source)
    settings = image_settings(render_image)
    with endpoint("karolina", KAROLINA_USER, tmp_path / "endpoint", settings) as ep:
        task = render_task(root, source, "1-4", task=3)
        record, packed = ep.result(ep.submit(render_on_worker, task, str(root)), timeout=200)
        script = block_files(ep, "script")
    assert_finished_frames(record, packed, root, range(1, 5), task=3)
    assert record["runtime"] == "image", record
    assert f'export BRAAS_IMAGE="{render_image}"' in script
    # The endpoint sent "the image's own Blender", not the client's command.
    written = json.loads((root / "job" / "tasks" / "task-0003.json").read_text())
    assert written["blender"] == {"kind": "image"}


# --- the batch job's walltime ------------------------------------------------------------------

#: What a user sends for the shortest batch job Slurm allows: 1 minute. Its margin (a quarter
#: of it, render_task.block_margin) is 15 s and its worker pool drains after 30 s.
KAROLINA_ONE_MINUTE = {**KAROLINA_USER, "walltime_minutes": 1}
BLOCK_REASON = re.compile(r"the batch job's walltime ends in (?P<left>[0-9]+) s: stopped to "
                          r"leave time to report; the missing frames are retried")


def rendered_in_attempt(root: Path, attempt: int) -> list[int]:
    return [r["frame"] for r in progress(root) if r["event"] == "frame"
            and r["state"] == "done" and r["attempt"] == attempt and not r.get("skipped")]


def slurm_start(job_id: str) -> float:
    """The batch job's start (epoch seconds): when its walltime began to count."""
    return datetime.fromisoformat(slurm_job(job_id)["StartTime"]).timestamp()  # local time


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_task_stops_before_its_batch_job_ends_and_the_retry_renders_in_a_new_one(
        slurm_cluster, tmp_path):
    """A 1-minute block and 12 frames of 4 s: the task ends TIMEOUT the margin before the
    block's walltime, its record comes back through the engine, the block ends by itself;
    the retry, sent as the client sends it (the missing frames), renders in a new block.

    Real Slurm blocks (Karolina's template, its worker_init's BRAAS_BLOCK_END and drain), the
    worker pool and Blender; only the cloud relay is bypassed.
    """
    scene = slow_frames_scene(tmp_path / "scene", frames=12, seconds=4)
    root = make_job_root(tmp_path / "job", scene)
    task = {**render_task(root, scene, "1-12"), "allow_scripts": True}
    began = time.monotonic()
    with endpoint("karolina", KAROLINA_ONE_MINUTE, tmp_path / "endpoint") as ep:
        first = ep.submit(render_on_worker, task, str(root))
        record, packed = ep.result(first, timeout=150)
        returned_at = time.time()
        block = str(wait_for(lambda: first.job_id, timeout=15, what="the first task's block"))

        assert (record["state"], record["exit_code"]) == ("TIMEOUT", 4), record
        reason = BLOCK_REASON.fullmatch(record["reason"])
        assert reason, record["reason"]
        assert 10 <= int(reason["left"]) <= 15  # the margin, less the watcher's poll
        done = rendered_in_attempt(root, 1)
        assert done, "Blender should have rendered frames before the block's end"
        missing = parse_frames(record["missing"])
        assert sorted(done + missing) == list(range(1, 13)) and missing
        assert frames_in(root) == [f"{f:06d}.png" for f in done]
        assert blender_processes(str(root)) == []
        assert len(packed) < RESULT_LIMIT
        # Back before Slurm's limit: the block's start + 1 minute, with the margin to spare.
        assert returned_at < slurm_start(block) + 60 - 10

        retry = {**task, "attempt": 2, "frames": record["missing"]}
        second = ep.submit(render_on_worker, retry, str(root))
        record2, packed2 = ep.result(second, timeout=150)
        block2 = str(wait_for(lambda: second.job_id, timeout=15, what="the retry's block"))
        assert block2 != block
        assert_finished_frames(record2, packed2, root, range(1, 13))
        assert rendered_in_attempt(root, 2) == missing
        # The first block drained once its task was back and ended by itself; Slurm did not
        # have to kill it at its walltime.
        assert slurm_job(block)["JobState"] == "COMPLETED", slurm_job(block)
    took = time.monotonic() - began
    print(f"two 1-minute blocks, {len(done)} + {len(missing)} frames: {took:.0f} s")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_block_slurm_kills_at_its_walltime_fails_the_task_with_an_error(slurm_cluster,
                                                                          tmp_path):
    """Where the worker does not know the block's end (the admin's worker_env blanks
    BRAAS_BLOCK_END), Slurm kills the block mid-render at its walltime: the engine's future
    holds an error result, not a hang, which the client counts as a FAILED attempt and retries.

    Real Slurm (its time limit), worker pool, engine and Blender; only the cloud relay is
    bypassed.
    """
    settings = {**ADMIN_SETTINGS,
                "worker_env": ADMIN_SETTINGS["worker_env"] + "\nexport BRAAS_BLOCK_END="}
    scene = slow_frames_scene(tmp_path / "scene", frames=40, seconds=4)
    root = make_job_root(tmp_path / "job", scene)
    task = {**render_task(root, scene, "1-40"), "allow_scripts": True}
    with endpoint("karolina", KAROLINA_ONE_MINUTE, tmp_path / "endpoint", settings) as ep:
        future = ep.submit(render_on_worker, task, str(root))
        block = str(wait_for(lambda: future.job_id, timeout=120, what="the task's block"))
        with pytest.raises(RemoteError) as failed:
            ep.result(future, timeout=380)
        failed_at = time.time()
        assert slurm_job(block)["JobState"] == "TIMEOUT", slurm_job(block)
    assert blender_processes(str(root)) == []
    error = str(failed.value)
    lost = next((line for line in error.splitlines() if "ManagerLost" in line), "")
    print(f"the future failed {failed_at - slurm_start(block):.0f} s after the block started:"
          f" {lost.strip()}")
    # Parsl's interchange gives up on the killed worker pool after its heartbeat threshold
    # (120 s) and fails its tasks with ManagerLost; the engine packs that as an error Result.
    assert lost, error


# --- PBS Pro: Polaris's template, through qsub --------------------------------------------------


@pytest.mark.slow
def test_polaris_render_task_runs_in_a_real_qsub_job(pbs_front_end, scene, tmp_path):
    """6 frames through qsub; the PBS view (qstat -f -F json) shows queue, account, walltime.

    Real qsub (PBS front end over Slurm), worker pool and Blender; only the Globus cloud relay
    is bypassed.
    """
    from parsl.jobs.states import JobState

    source = scene("anim6")
    root = make_job_root(tmp_path / "job", source)
    with endpoint("polaris", POLARIS_USER, tmp_path / "endpoint") as ep:
        assert type(ep.engine.provider).__name__ == "PBSProProvider"
        future = ep.submit(render_on_worker, render_task(root, source, "1-6"), str(root))
        record, packed = ep.result(future, timeout=200)
        assert_finished_frames(record, packed, root, range(1, 7))

        job_id = str(wait_for(lambda: future.job_id, timeout=15, what="the task's block id"))
        # What the provider itself sees of its block, through `qstat -x -f -F json`.
        assert ep.engine.provider.status([job_id])[0].state == JobState.RUNNING
        proc = subprocess.run(["qstat", "-f", "-F", "json", job_id], capture_output=True,
                              text=True, timeout=15, check=True)
        job = json.loads(proc.stdout)["Jobs"][job_id]
        assert (job["queue"], job["Account_Name"], job["job_state"]) == (
            "debug", "braas_render", "R")
        assert job["Resource_List"]["walltime"] == "00:10:00"
        script = block_files(ep, "script")
        assert "#PBS -l walltime=00:10:00\n" in script
        assert "#PBS -l filesystems=home:eagle\n" in script
        assert "#SBATCH" not in script
    assert slurm_job(job_id)["JobState"] in SLURM_FINAL_STATES


# --- what the endpoint's worker gets, without a scheduler ----------------------------------------


def test_render_on_worker_travels_by_source(tmp_path):
    """The function the engine tests send runs where braas_globus cannot be imported.

    With the SDK's default code serializer (DillCode) it would not: dill pickles a module's
    function by reference, so a centre's worker would need braas_globus installed.
    """
    from globus_compute_sdk.serialize import ComputeSerializer

    by_source = source_serializer().serialize(render_on_worker)
    by_reference = ComputeSerializer().serialize(render_on_worker)
    probe = (
        "import sys, json; sys.modules['braas_globus'] = None\n"  # as on a bare worker
        "from globus_compute_sdk.serialize import ComputeSerializer\n"
        "f = ComputeSerializer().deserialize(sys.stdin.read())\n"
        "print(json.dumps(f({'task': 0, 'frames': '1'}, sys.argv[1])))\n"
    )
    run = [sys.executable, "-c", probe, str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAAS_")}
    ok = subprocess.run(run, input=by_source, capture_output=True, text=True, env=env,
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["reason"].startswith("this endpoint names no Blender")
    bare = subprocess.run(run, input=by_reference, capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert bare.returncode != 0 and "braas_globus" in bare.stderr


@pytest.mark.parametrize("cluster", ["karolina", "polaris"])
def test_template_as_shipped_names_the_missing_image(cluster, scene, tmp_path, monkeypatch):
    """Before the admin sets the image path, a task fails with a reason that names it."""
    template = (REPO / "endpoints" / cluster / "user_config_template.yaml.j2").read_text()
    setting = re.search(r'^\{%-? set braas_image = "([^"]*)" %\}$', template, re.MULTILINE)
    assert setting, "the template has no braas_image centre setting"
    image = setting.group(1)
    monkeypatch.setenv("BRAAS_IMAGE", image)  # what worker_init exports, unedited
    monkeypatch.delenv("BRAAS_WORKER_DIR", raising=False)
    source = scene("anim6")
    root = make_job_root(tmp_path / "job", source)
    record = render_on_worker(render_task(root, source, "1-6"), str(root))
    assert record["state"] == "FAILED" and record["missing"] == "1-6"
    host = os.uname().nodename
    assert record["reason"] == f"the image BRAAS_IMAGE={image} does not exist on {host}"
