"""One still split by samples (``submit --image --split N``), end to end on the local
backend through the real CLI and real Blender (PyPI bpy): the parts render as tasks, the
runner merges them with Cycles' own merge, and the merged still equals one render of the
same frame with all the samples; a scene that denoises is denoised once, after the merge,
and equals that render denoised by Cycles."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from braas_globus.blender_scripts import MERGE_PARTS
from braas_globus.worker.image_check import is_valid_image

from .test_local_jobs import flaky_blender, job_info, submit  # noqa: F401 - a fixture

#: The largest per-pixel difference (linear RGBA, 32-bit EXR) the merged still may have
#: from one render with all its samples: the parts partition one sample sequence, so the
#: two differ by float rounding only (measured here: 2.4e-7 at 64x48, 4 parts of 16).
BOUND = 1e-5
#: The same, for a still that denoises: merged, then denoised once by the compositor's
#: OpenImageDenoise with the parts' averaged albedo and normal passes, against one render
#: that Cycles denoised (OpenImageDenoise, albedo and normal, prefilter Accurate, quality
#: High). Measured here at 64x48, 4 parts of 16: 4.0e-6 with bpy 5.0.1 and with bpy 5.3.0
#: (PSNR 131 dB), where denoising itself changes pixels by up to 0.14: a still not
#: denoised, or denoised with other passes, is far outside it.
DENOISED_BOUND = 1e-4

COMPARE = """
import json, sys
import bpy
import numpy as np
a, b = (bpy.data.images.load(path) for path in sys.argv[1:3])
pa, pb = np.array(a.pixels[:]), np.array(b.pixels[:])
print("RESULT " + json.dumps({"sizes": [list(a.size), list(b.size)], "float": a.is_float,
                              "largest": float(np.abs(pa - pb).max()) if pa.shape == pb.shape
                              else None}))
"""


def compare_exr(first: Path, second: Path) -> dict:
    """Blender reads both images: their sizes and the largest per-pixel difference."""
    done = subprocess.run([sys.executable, "-c", COMPARE, str(first), str(second)],
                          capture_output=True, text=True, check=True, timeout=120)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_merged_still_equals_one_render_with_all_the_samples(cli, scene, home):
    blend = scene("anim6")  # 64x48, its own denoising off
    before = sha256(blend)
    result = cli("submit", blend, "--image", "--split", "4", "--samples", "64",
                 "--format", "OPEN_EXR", "--wait", "--json")
    assert result.code == 0, result.stderr
    assert "--split 4: 4 parts of 16 samples each, adaptive sampling off" in result.stdout
    assert "4 parts" in result.stderr
    split = result.json()
    plain = submit(cli, blend, "--image", "--samples", "64", "--format", "OPEN_EXR")
    assert split["state"] == plain["state"] == "FINISHED"
    split_dir, plain_dir = Path(split["folder"]), Path(plain["folder"])
    parts = sorted(p.name for p in (split_dir / "out" / "parts").glob("*.exr"))
    assert parts == [f"part-000{n}.exr" for n in (1, 2, 3, 4)]
    (still,) = (split_dir / "out").glob("*.exr")
    (whole,) = (plain_dir / "out").glob("*.exr")
    assert still.name == whole.name  # the frame's own name, in the format asked for
    compared = compare_exr(still, whole)
    assert compared["sizes"] == [[64, 48], [64, 48]] and compared["float"]
    assert compared["largest"] < BOUND, compared

    info = job_info(cli, split["id"])
    assert info["unit"] == "parts" and info["frames"]["total"] == 4
    assert info["split"]["merge"]["state"] == "FINISHED"
    assert info["split"]["samples_each"] == 16 and info["split"]["samples_total"] == 64
    assert info["last_frame"] == {"frame": int(info["parameters"]["frames"]),
                                  "file": str(still)}
    text = cli("info", split["id"]).stdout
    assert "parts      4/4 done" in text and "merge      FINISHED" in text
    assert "frames/min" not in text  # its pace is in parts
    logs = cli("logs", split["id"], "--json").json()
    assert sorted(logs) == ["merge.log", "task-0000.log"] and logs["merge.log"].strip()
    shown = cli("preview", split["id"], "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["rendered"] == [int(info["parameters"]["frames"])]
    downloaded = cli("download", split["id"], "--json")
    assert downloaded.code == 0, downloaded.stderr
    assert downloaded.json()["frames_expected"] == downloaded.json()["frames_valid"] == 1
    assert sha256(blend) == before  # the user's .blend is never changed


def test_uneven_parts_render_the_same_samples_each_and_say_so(cli, scene):
    result = cli("submit", scene("anim6"), "--image", "--split", "3", "--samples", "8",
                 "--format", "PNG", "--wait", "--json")
    assert result.code == 0, result.stderr
    assert "--split 3: 9 samples in all, not 8" in result.stdout
    job = result.json()
    info = job_info(cli, job["id"])
    assert info["split"]["samples_each"] == 3 and info["split"]["samples_total"] == 9
    (still,) = (Path(job["folder"]) / "out").glob("*.png")
    assert is_valid_image(still)


def test_a_part_killed_mid_render_is_retried_alone(cli, scene, flaky_blender,  # noqa: F811
                                                  monkeypatch, tmp_path):
    monkeypatch.setenv("FLAKY_CRASH_AFTER", "2")
    monkeypatch.setenv("FLAKY_STATE", str(tmp_path / "flaky-state"))
    job = submit(cli, scene("anim6"), "--image", "--split", "4", "--samples", "8")
    assert job["state"] == "FINISHED", job
    calls = flaky_blender()
    parts_of = [call[call.index("--frames") + 1] for call in calls]
    assert parts_of == ["1-4", "3,4"]  # parts 1 and 2 were in: only 3 and 4 again
    info = job_info(cli, job["id"])
    assert info["tasks"][0]["attempts"] == 2
    assert info["split"]["merge"]["state"] == "FINISHED"


def test_a_failed_merge_fails_the_job_keeps_the_parts_and_resume_merges(cli, scene,
                                                                       flaky_blender,  # noqa: F811
                                                                       monkeypatch):
    monkeypatch.setenv("FLAKY_FAIL_MERGE", "1")
    result = cli("submit", scene("anim6"), "--image", "--split", "2", "--samples", "4",
                 "--wait", "--json")
    assert result.code == 1
    job = result.json()
    info = job_info(cli, job["id"])
    assert info["state"] == "FAILED"
    reason = info["split"]["merge"]["reason"]
    assert reason == ("the merge of the parts failed: Error: simulated merge failure "
                      "(test stand-in)")
    assert "merge      FAILED: the merge of the parts failed" in cli("info", job["id"]).stdout
    folder = Path(job["folder"])
    assert len(list((folder / "out" / "parts").glob("part-*.exr"))) == 2
    renders = len(flaky_blender())

    monkeypatch.delenv("FLAKY_FAIL_MERGE")
    resumed = cli("resume", job["id"], "--wait", "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["state"] == "FINISHED"
    assert len(flaky_blender()) == renders  # no part rendered again: only the merge ran
    assert [p.suffix for p in (folder / "out").glob("*.png")] == [".png"]


@pytest.mark.parametrize("frames", [["--frames", "1"]])
def test_one_frame_of_frames_may_be_split(cli, scene, frames):
    job = submit(cli, scene("anim6"), *frames, "--split", "2", "--samples", "2")
    assert job["state"] == "FINISHED"
    assert (Path(job["folder"]) / "out" / "000001.png").is_file()


def test_a_part_file_is_a_record_only_of_a_split_still(tmp_path):
    from braas_globus.records import JobScope, RecordError, parse_line

    line = json.dumps({"task": 0, "event": "frame", "frame": 2, "state": "done",
                       "file": "out/parts/part-0002.exr"})
    split = JobScope(tmp_path, {0: frozenset({1, 2})}, parts=True)
    assert parse_line(line, split, 0).file == "out/parts/part-0002.exr"
    with pytest.raises(RecordError, match="not a file this job renders"):
        parse_line(line, JobScope(tmp_path, {0: frozenset({1, 2})}), 0)
    frame = line.replace("out/parts/part-0002.exr", "out/000002.png")
    with pytest.raises(RecordError, match="parts of a still"):
        parse_line(frame, split, 0)


def split_and_whole(cli, blend: Path, *args: str) -> tuple[dict, Path, Path]:
    """The still split in 4 parts of 16 samples, and one render with all 64: the split job,
    and the two EXR stills."""
    result = cli("submit", blend, "--image", "--split", "4", "--samples", "64",
                 "--format", "OPEN_EXR", *args, "--wait", "--json")
    assert result.code == 0, result.stderr
    split = result.json()
    plain = submit(cli, blend, "--image", "--samples", "64", "--format", "OPEN_EXR", *args)
    assert split["state"] == plain["state"] == "FINISHED"
    (still,) = (Path(split["folder"]) / "out").glob("*.exr")
    (whole,) = (Path(plain["folder"]) / "out").glob("*.exr")
    split["stdout"] = result.stdout
    return split, still, whole


def test_a_denoised_still_is_denoised_once_after_the_merge(cli, scene, home):
    blend = scene("denoised")  # 64x48, OpenImageDenoise on, as the scene asks
    split, still, whole = split_and_whole(cli, blend)
    assert "--split 4: denoised once after the merge (the parts are not)" in split["stdout"]
    compared = compare_exr(still, whole)
    assert compared["sizes"] == [[64, 48], [64, 48]] and compared["float"]
    assert compared["largest"] < DENOISED_BOUND, compared
    undenoised = submit(cli, blend, "--image", "--samples", "64", "--format", "OPEN_EXR",
                        "--no-denoise")
    (noisy,) = (Path(undenoised["folder"]) / "out").glob("*.exr")
    assert compare_exr(noisy, whole)["largest"] > 100 * DENOISED_BOUND  # the bound tells
    logs = cli("logs", split["id"], "--json").json()
    assert ("braas: denoised once after the merge: OpenImageDenoise, albedo and normal "
            "passes, prefilter Accurate, quality High") in logs["merge.log"]
    assert "with the denoising passes for the merge's denoise" in logs["task-0000.log"]
    assert "adaptive sampling off, denoised once after the merge" in \
        cli("info", split["id"]).stdout
    assert job_info(cli, split["id"])["split"]["merge"]["denoised"] is True


SET_DENOISER = """
import sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
cycles = bpy.context.scene.cycles
cycles.denoising_input_passes, cycles.denoising_prefilter, cycles.denoising_quality = \
    sys.argv[2:5]
bpy.ops.wm.save_mainfile(filepath=sys.argv[1])
"""


def test_the_merge_denoises_with_the_scenes_denoiser_settings(cli, scene, home):
    # Other input passes, prefilter and quality: each changes the denoised still by 0.017
    # to 0.25 here, so the merge's Denoise node must take the scene's to stay in the bound.
    blend = scene("denoised")
    subprocess.run([sys.executable, "-c", SET_DENOISER, str(blend), "RGB_ALBEDO", "FAST",
                    "BALANCED"], check=True, capture_output=True, timeout=120)
    split, still, whole = split_and_whole(cli, blend)
    compared = compare_exr(still, whole)
    assert compared["largest"] < DENOISED_BOUND, compared
    logs = cli("logs", split["id"], "--json").json()
    assert ("braas: denoised once after the merge: OpenImageDenoise, albedo passes, "
            "prefilter Fast, quality Balanced") in logs["merge.log"]


def test_no_denoise_splits_a_denoised_scene_without_denoising(cli, scene):
    result = cli("submit", scene("denoised"), "--image", "--split", "2", "--no-denoise",
                 "--wait", "--json")
    assert result.code == 0, result.stderr
    assert "denoised once" not in result.stdout
    logs = cli("logs", result.json()["id"], "--json").json()
    assert "braas: not denoised (the job does not denoise)" in logs["merge.log"]
    assert "denoising passes" not in logs["task-0000.log"]
    assert "adaptive sampling off, not denoised" in cli("info", result.json()["id"]).stdout


def run_merge(parts: list[Path], out: Path, *flags: str, no_denoiser: bool = False):
    """merge_parts.py in PyPI bpy, as merge.py runs it (optionally a Blender built without
    OpenImageDenoise, as the flaky stand-in makes one)."""
    code = ("import runpy, sys, bpy, _cycles\n"
            f"_cycles.with_openimagedenoise = {not no_denoiser}\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    scene_file = next(parts[0].parents[2].glob("in/**/*.blend"))
    args = ["--scene", str(scene_file), "--out", str(out), "--frame", "1"]
    for part in parts:
        args += ["--part", str(part)]
    return subprocess.run([sys.executable, "-c", code, str(MERGE_PARTS), "--", *args, *flags],
                          capture_output=True, text=True, timeout=300)


def test_a_merge_that_cannot_denoise_fails_in_one_line(cli, scene, tmp_path):
    blend = scene("anim6")
    plain = submit(cli, blend, "--image", "--split", "2", "--samples", "4")
    denoised = submit(cli, blend, "--image", "--split", "2", "--samples", "4", "--denoise")  # --denoise over a scene that does not denoise
    assert plain["state"] == denoised["state"] == "FINISHED"
    logs = cli("logs", denoised["id"], "--json").json()
    assert "braas: denoised once after the merge: OpenImageDenoise" in logs["merge.log"]

    def fatal(done) -> str:
        assert done.returncode == 1, done.stdout + done.stderr
        (line,) = [line for line in done.stdout.splitlines() if line.startswith("BRAAS_FATAL")]
        return json.loads(line.removeprefix("BRAAS_FATAL "))["reason"]

    # Parts rendered without the denoising passes (their job did not denoise) are refused.
    parts = sorted((Path(plain["folder"]) / "out" / "parts").glob("part-*.exr"))
    assert fatal(run_merge(parts, tmp_path / "a", "--denoise")) == (
        "part-0001.exr has no Denoising Albedo pass: its part was not rendered for a "
        "denoised still (render the parts again, or submit with --no-denoise)")
    # A Blender built without OpenImageDenoise fails; it never skips the denoise.
    parts = sorted((Path(denoised["folder"]) / "out" / "parts").glob("part-*.exr"))
    reason = fatal(run_merge(parts, tmp_path / "b", "--denoise", no_denoiser=True))
    assert reason.startswith("this Blender (") and "built without OpenImageDenoise" in reason
    assert not list((tmp_path / "b").glob("*.png"))
    done = run_merge(parts, tmp_path / "c", "--denoise")  # the same parts, with it
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.suffix for p in (tmp_path / "c").iterdir()] == [".png"]
