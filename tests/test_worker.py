"""The worker entry point, run the way a cluster node runs it: by path, stdlib only.

Real Blender (PyPI bpy) renders every frame here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from braas_globus.worker import render_task
from braas_globus.worker.frames import parse_frames
from braas_globus.worker.image_check import is_valid_image

from .conftest import frame_files, wait_for

WORKER_DIR = Path(render_task.__file__).parent


@pytest.fixture
def job_root(tmp_path, scene):
    """A job folder as a backend lays it out, with the scene in in/."""
    source = scene("anim6")
    root = tmp_path / "job-root"
    shutil.copytree(source.parent, root / "in")
    (root / "job" / "tasks").mkdir(parents=True)
    return root


@pytest.fixture
def copied_worker(tmp_path):
    """The worker files alone in a folder: proves they need nothing of braas_globus."""
    target = tmp_path / "worker-only"
    target.mkdir()
    for path in WORKER_DIR.glob("*.py"):  # every worker module, as the image's %files has
        shutil.copy(path, target / path.name)
    return target


def write_task(root: Path, frames: str, index: int = 0, **extra) -> Path:
    task = {"task": index, "attempt": 1, "scene": "in/scene.blend", "frames": frames,
            "device": "CPU", "walltime_seconds": 300,
            "blender": {"kind": "python", "command": [sys.executable]}, **extra}
    path = root / "job" / "tasks" / f"task-{index:04d}.json"
    path.write_text(json.dumps(task))
    return path


def run_worker(worker_dir: Path, task_file: Path, timeout=120,
               env: dict[str, str] | None = None) -> tuple[int, list[dict]]:
    """Run the worker as a node does; ``env`` adds to this environment, whose BRAAS_BLOCK_*
    (a batch job's, where these tests run in one) are left out."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BRAAS_BLOCK_")}
    # -I -S: no site-packages, no PYTHONPATH: only the standard library is importable.
    done = subprocess.run([sys.executable, "-I", "-S", str(worker_dir / "render_task.py"),
                           str(task_file)], capture_output=True, text=True, timeout=timeout,
                          env={**environ, **(env or {})})
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, records


def frame_events(records, state="done"):
    return [r for r in records if r["event"] == "frame" and r["state"] == state]


def test_renders_every_frame_with_only_the_stdlib(job_root, copied_worker, tmp_path):
    temp = tmp_path / "temp"  # Blender's session folder goes here: none may be left
    temp.mkdir()
    code, records = run_worker(copied_worker, write_task(job_root, "1-6"),
                               env={"TMPDIR": str(temp)})
    assert code == 0, records[-1]
    assert list(temp.iterdir()) == []
    assert frame_files(job_root) == [f"{n:06d}.png" for n in range(1, 7)]
    assert all(is_valid_image(p) for p in (job_root / "out").glob("*.png"))
    assert [r["frame"] for r in frame_events(records)] == [1, 2, 3, 4, 5, 6]
    assert records[-1] == {**records[-1], "event": "end", "state": "FINISHED", "missing": ""}
    progress = (job_root / "job" / "progress" / "task-0000.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in progress].count("frame") == 6
    assert "task 0 attempt 1" in (job_root / "log" / "task-0000.log").read_text()
    assert not [p.name for p in (job_root / "out").iterdir() if p.name.startswith(".")]


def test_frames_already_done_are_skipped_and_a_broken_one_rendered_again(job_root, copied_worker):
    task = write_task(job_root, "1-4")
    assert run_worker(copied_worker, task)[0] == 0
    broken = job_root / "out" / "000003.png"
    broken.write_bytes(broken.read_bytes()[:100])  # cut short, as by a full disk
    kept = (job_root / "out" / "000001.png").stat().st_mtime_ns

    code, records = run_worker(copied_worker, task)
    assert code == 0
    start = next(r for r in records if r["event"] == "start")
    assert (start["skipped"], start["pending"]) == ("1,2,4", "3")
    assert is_valid_image(broken)
    assert (job_root / "out" / "000001.png").stat().st_mtime_ns == kept

    code, records = run_worker(copied_worker, task)
    assert code == 0 and not any(r["event"] == "running" for r in records)  # no Blender at all


def test_cancel_marker_stops_blender_within_seconds(job_root):
    task = write_task(job_root, "1-400")
    process = subprocess.Popen([sys.executable, str(WORKER_DIR / "render_task.py"), str(task)],
                               stdout=subprocess.DEVNULL)
    wait_for(lambda: len(frame_files(job_root)) >= 2, what="two frames")
    blender_pid = next(json.loads(line)["pid"] for line in
                       (job_root / "job" / "progress" / "task-0000.jsonl").read_text().splitlines()
                       if '"running"' in line)
    (job_root / "job" / "CANCEL").touch()
    asked = time.monotonic()
    assert process.wait(timeout=15) == 3
    assert time.monotonic() - asked < 5
    assert not Path(f"/proc/{blender_pid}").exists() or \
        Path(f"/proc/{blender_pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    count = len(frame_files(job_root))
    time.sleep(1.5)
    assert len(frame_files(job_root)) == count < 400


@pytest.mark.parametrize("marker", [False, True], ids=["batch job ended", "local cancel"])
def test_a_term_is_a_cancel_only_with_the_cancel_marker(job_root, marker):
    """A TERM from the scheduler (the batch job ended or was killed) is not a cancel: the
    task FAILED, its frames retried; a local cancel writes the marker first."""
    task = write_task(job_root, "1-400")
    process = subprocess.Popen([sys.executable, str(WORKER_DIR / "render_task.py"), str(task)],
                               stdout=subprocess.PIPE, text=True)
    wait_for(lambda: len(frame_files(job_root)) >= 2, what="two frames")
    if marker:
        (job_root / "job" / "CANCEL").touch()
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=15)
    end = [json.loads(line) for line in stdout.splitlines() if '"end"' in line][-1]
    if marker:
        assert (process.returncode, end["state"]) == (3, "CANCELED")
    else:
        assert (process.returncode, end["state"]) == (1, "FAILED")
        assert "SIGTERM without a cancel" in end["reason"]
    assert "400" in end["missing"]


def test_walltime_exceeded_is_reported_as_timeout(job_root, copied_worker):
    # The batch job ends much later: the task's own walltime comes first and is the reason.
    block = {"BRAAS_BLOCK_END": str(int(time.time()) + 3600), "BRAAS_BLOCK_SECONDS": "7200"}
    code, records = run_worker(copied_worker, write_task(job_root, "1-2000", walltime_seconds=3),
                               env=block)
    assert code == 4
    assert records[-1]["state"] == "TIMEOUT"
    assert records[-1]["reason"] == "walltime of 3 s exceeded"


BLOCK_REASON = re.compile(r"the batch job's walltime (ends in (?P<left>[0-9]+) s|has ended): "
                          r"stopped to leave time to report; the missing frames are retried")


def assert_block_timeout(records: list[dict], frames: str, root: Path) -> re.Match:
    """TIMEOUT for the batch job's end, missing exactly the frames not rendered."""
    end = records[-1]
    assert (end["event"], end["state"]) == ("end", "TIMEOUT"), end
    reason = BLOCK_REASON.fullmatch(end["reason"])
    assert reason, end["reason"]
    done = [int(name.split(".")[0]) for name in frame_files(root)]
    assert sorted(parse_frames(end["missing"]) + done) == parse_frames(frames)
    assert [r["frame"] for r in frame_events(records)] == done
    return reason


def test_the_batch_jobs_end_stops_blender_with_a_margin(job_root, copied_worker):
    """BRAAS_BLOCK_END (worker_init's) a few seconds ahead: Blender is stopped the margin
    before it, and the task ends TIMEOUT naming the batch job, the rest missing."""
    block_end = int(time.time()) + 8
    block = {"BRAAS_BLOCK_END": str(block_end), "BRAAS_BLOCK_MARGIN_S": "3"}
    code, records = run_worker(copied_worker, write_task(job_root, "1-2000"), env=block)
    assert code == 4
    reason = assert_block_timeout(records, "1-2000", job_root)
    assert reason["left"] in ("2", "3"), records[-1]["reason"]  # the margin, less the poll
    assert block_end - 4 <= records[-1]["time"] < block_end  # before the job's end
    blender_pid = next(r["pid"] for r in records if r["event"] == "running")
    assert not Path(f"/proc/{blender_pid}").exists() or \
        Path(f"/proc/{blender_pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    count = len(frame_files(job_root))
    time.sleep(1)
    assert len(frame_files(job_root)) == count < 2000


@pytest.mark.parametrize(("left", "block"), [
    (-5, {}),  # past its end: the scheduler is about to kill the job
    (30, {}),  # inside the default margin (60 s)
    (10, {"BRAAS_BLOCK_SECONDS": "60"}),  # a 1-minute job: a quarter, 15 s
], ids=["ended", "inside-the-margin", "inside-a-short-jobs-margin"])
def test_a_task_with_less_than_the_margin_left_starts_no_blender(job_root, copied_worker, left,
                                                                 block):
    env = {"BRAAS_BLOCK_END": str(int(time.time()) + left), **block}
    started = time.monotonic()
    code, records = run_worker(copied_worker, write_task(job_root, "1-6"), env=env)
    assert time.monotonic() - started < 10
    assert code == 4
    reason = assert_block_timeout(records, "1-6", job_root)
    assert records[-1]["missing"] == "1-6"
    assert reason["left"] is None if left < 0 else 0 < int(reason["left"]) <= left
    assert not any(r["event"] == "running" for r in records)  # no Blender at all
    assert (job_root / "job" / "progress" / "task-0000.jsonl").read_text().count('"end"') == 1


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"BRAAS_BLOCK_END": ""}, None),
    ({"BRAAS_BLOCK_END": "soon"}, None),
    ({"BRAAS_BLOCK_END": "-5"}, None),
    ({"BRAAS_BLOCK_END": " 1700000000"}, None),
    ({"BRAAS_BLOCK_END": "1700000000\n"}, None),
    ({"BRAAS_BLOCK_END": "\u0661\u0667\u0660\u0660"}, None),  # digits, not ASCII ones
    ({"BRAAS_BLOCK_END": "1700000000"}, (1700000000, 60)),
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_SECONDS": "60"}, (1700000000, 15)),
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_SECONDS": "180"}, (1700000000, 45)),
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_SECONDS": "172800"}, (1700000000, 60)),
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_SECONDS": "1h"}, (1700000000, 60)),
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_MARGIN_S": "0"}, (1700000000, 0)),
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_SECONDS": "60",
      "BRAAS_BLOCK_MARGIN_S": "300"}, (1700000000, 300)),  # the centre's word counts
    ({"BRAAS_BLOCK_END": "1700000000", "BRAAS_BLOCK_MARGIN_S": "1.5"}, (1700000000, 60)),
])
def test_the_batch_jobs_end_is_read_as_digits_only(env, expected):
    assert render_task.block_end(env) == expected


def test_a_scene_for_another_engine_is_refused(tmp_path, scene, copied_worker):
    root = tmp_path / "eevee-job"
    shutil.copytree(scene("eevee").parent, root / "in")
    (root / "job" / "tasks").mkdir(parents=True)
    code, records = run_worker(copied_worker, write_task(root, "1"))
    assert code == 1
    assert "Cycles" in records[-1]["reason"] and records[-1]["missing"] == "1"


def test_missing_gpu_device_fails_with_blenders_reason(job_root, copied_worker):
    code, records = run_worker(copied_worker, write_task(job_root, "1", device="OPTIX"))
    assert code == 1
    assert "no OPTIX device" in records[-1]["reason"]


def test_scripts_in_the_blend_run_only_when_the_job_allows(job_root, copied_worker, tmp_path):
    marker = tmp_path / "script-ran"
    add_on_load_script = tmp_path / "add_on_load_script.py"
    add_on_load_script.write_text(f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(job_root / "in" / "scene.blend")!r})
text = bpy.data.texts.new("on_load.py")
text.write("open({str(marker)!r}, 'w').write('ran')")
text.use_module = True  # Blender runs it when the file loads, if scripts may run
bpy.ops.wm.save_mainfile()
""")
    subprocess.run([sys.executable, str(add_on_load_script)], check=True, capture_output=True)
    assert run_worker(copied_worker, write_task(job_root, "1"))[0] == 0
    assert not marker.exists()
    assert run_worker(copied_worker, write_task(job_root, "2", allow_scripts=True))[0] == 0
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("content", ["not json", '{"task": 0}', '{"task": 0, "frames": "5-1", '
                                     '"scene": "x", "blender": {"command": []}}'])
def test_a_bad_task_file_exits_2(tmp_path, copied_worker, content):
    task = tmp_path / "job" / "tasks" / "task-0000.json"
    task.parent.mkdir(parents=True)
    task.write_text(content)
    code, _ = run_worker(copied_worker, task)
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_an_image_task_starts_the_blender_the_image_describes(job_root, tmp_path, monkeypatch):
    # In the render image, /opt/blender/blender.json (written at build) says how to start it.
    described = tmp_path / "blender.json"
    described.write_text(json.dumps({"kind": "python", "command": [sys.executable]}))
    monkeypatch.setattr(render_task, "IMAGE_BLENDER", described)
    task = write_task(job_root, "2", blender={"kind": "image"})
    assert render_task.main([str(task)]) == 0
    assert frame_files(job_root) == ["000002.png"]


DEBIAN_AARCH64 = {"kind": "executable", "command": ["/opt/blender/blender"],
                  "devices": ["CPU"], "openimagedenoise": False,
                  "name": "Blender 4.3.2 (aarch64, from debian)"}


@pytest.mark.parametrize("task, reason", [
    ({"device": "CUDA"}, "Blender 4.3.2 (aarch64, from debian) cannot render on CUDA: it has "
                         "no CUDA kernels (it renders on CPU); submit with --device CPU, or "
                         "render with an image whose Blender has them"),
    ({"render": {"denoise": True}}, "Blender 4.3.2 (aarch64, from debian) was built without "
                                    "OpenImageDenoise, and the job asks to denoise: submit "
                                    "with --no-denoise, or render with an image whose "
                                    "Blender has it"),
])
def test_a_task_the_images_blender_cannot_render_fails_with_why_and_starts_no_blender(
        job_root, tmp_path, monkeypatch, task, reason):
    # The image's blender.json says what its Blender renders with (fetch_blender.sh): the
    # Debian aarch64 build has no GPU kernels and no OpenImageDenoise. Its command is not
    # on this machine: a Blender start would fail otherwise.
    described = tmp_path / "blender.json"
    described.write_text(json.dumps(DEBIAN_AARCH64))
    monkeypatch.setattr(render_task, "IMAGE_BLENDER", described)
    task_file = write_task(job_root, "1-2", blender={"kind": "image"}, **task)
    assert render_task.main([str(task_file)]) == 1
    records = [json.loads(line) for line in
               (job_root / "job" / "progress" / "task-0000.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["state"] == "FAILED"
    assert records[-1]["reason"] == reason and records[-1]["missing"] == "1,2"
    assert frame_files(job_root) == []


def test_a_split_part_renders_where_the_blender_has_no_openimagedenoise(job_root, tmp_path,
                                                                        monkeypatch):
    # A split still that denoises: its parts store the denoising passes, undenoised, and the
    # merge on the client denoises once. So a centre's Blender without OpenImageDenoise
    # (Debian's, in the aarch64 image) renders the parts: neither the image's description
    # nor Blender's own check refuses them. The Blender is the STAND-IN that says it was
    # built without OpenImageDenoise (tests/stand_ins/flaky_blender.py, over real bpy).
    stand_in = tmp_path / "blender"
    stand_in.write_text(f"#!{sys.executable}\n" + (Path(__file__).parent / "stand_ins" /
                                                   "flaky_blender.py").read_text())
    stand_in.chmod(0o755)
    monkeypatch.setenv("FLAKY_NO_DENOISER", "1")
    monkeypatch.setenv("FLAKY_LOG", str(tmp_path / "flaky.jsonl"))
    described = tmp_path / "blender.json"
    described.write_text(json.dumps({**DEBIAN_AARCH64, "command": [str(stand_in)]}))
    monkeypatch.setattr(render_task, "IMAGE_BLENDER", described)
    task = write_task(job_root, "1-2", blender={"kind": "image"}, render={"denoise": True},
                      split={"frame": 1, "parts": 2})
    assert render_task.main([str(task)]) == 0
    parts = sorted(p.name for p in (job_root / "out" / "parts").glob("part-*.exr"))
    assert parts == ["part-0001.exr", "part-0002.exr"]
    # A whole frame that asks to denoise is refused there, with the reason.
    frame = write_task(job_root, "3", index=1, blender={"kind": "image"},
                       render={"denoise": True})
    assert render_task.main([str(frame)]) == 1


def test_an_image_task_outside_the_image_is_a_bad_task(job_root, copied_worker):
    assert not render_task.IMAGE_BLENDER.exists(), "this test runs outside the render image"
    task = write_task(job_root, "1", blender={"kind": "image"})
    done = subprocess.run([sys.executable, "-I", "-S", str(copied_worker / "render_task.py"),
                           str(task)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert str(render_task.IMAGE_BLENDER) in done.stderr
    assert not (job_root / "out").exists()


def test_a_used_file_missing_from_in_fails_the_task_naming_it(job_root, copied_worker):
    (job_root / "in" / "textures" / "ground" / "grid.png").unlink()
    code, records = run_worker(copied_worker, write_task(job_root, "1-2"))
    assert code == 1 and records[-1]["state"] == "FAILED"
    assert "textures/ground/grid.png" in records[-1]["reason"]
    assert "missing from the job's staged files" in records[-1]["reason"]
    assert frame_files(job_root) == []  # nothing rendered against the missing file


def test_an_allowed_missing_file_is_recorded_and_the_task_renders(job_root, copied_worker):
    (job_root / "in" / "textures" / "ground" / "grid.png").unlink()
    code, records = run_worker(copied_worker, write_task(job_root, "1-2", allow_missing=True))
    assert code == 0, records[-1]
    missing = [r for r in records if r["event"] == "missing"]
    assert [(m["file"], "grid" in m["owner"]) for m in missing] == \
        [("textures/ground/grid.png", True)]
    assert frame_files(job_root) == ["000001.png", "000002.png"]


def test_a_scene_saved_by_a_newer_blender_is_refused_unless_allowed(job_root, copied_worker,
                                                                    tmp_path):
    # A Blender that says it is 4.1: older than the 5.x that saved the scene.
    older = tmp_path / "older_blender.py"
    older.write_text(
        "import runpy, sys\n"
        "import bpy\n"
        "class OlderApp:  # a STAND-IN: bpy.app as Blender 4.1 would answer\n"
        "    def __getattr__(self, name):\n"
        "        return {'version': (4, 1, 0), 'version_string': '4.1.0'}.get(\n"
        "            name, getattr(real, name))\n"
        "real, bpy.app = bpy.app, OlderApp()\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    blender = {"kind": "python", "command": [sys.executable, str(older)]}
    code, records = run_worker(copied_worker, write_task(job_root, "1", blender=blender))
    assert code == 1, records[-1]
    assert "newer than this Blender 4.1.0" in records[-1]["reason"]
    code, records = run_worker(copied_worker, write_task(job_root, "1", blender=blender,
                                                         allow_older_blender=True))
    assert code == 0, records[-1]
