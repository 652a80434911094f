"""Render settings at submit (--samples, --resolution, --resolution-percent, --camera,
--view-layer, --format, --denoise/--no-denoise, --frame-step): each changes the output as
asked, with real renders (PyPI bpy) at 64x48 and 4 samples; the user's .blend never changes.

Bad values are in tests/test_cli_bad_input.py (exit 2, one line, nothing written).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from braas_globus.worker import job_layout, render_task

COLOUR_SCENE = Path(__file__).parent / "scenes" / "make_colour_scene.py"


@pytest.fixture(scope="module")
def colour_template(tmp_path_factory) -> Path:
    """CamRed sees red, CamBlue blue; view layer Green (off) overrides every material."""
    out = tmp_path_factory.mktemp("colour") / "colour.blend"
    subprocess.run([sys.executable, str(COLOUR_SCENE), "--", str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def colour_scene(colour_template, tmp_path) -> Path:
    copy = tmp_path / "user" / "colour.blend"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(colour_template.read_bytes())
    return copy


def submitted(cli, scene: Path, *args: str) -> dict:
    """Submit, wait, and return the finished job's info."""
    result = cli("submit", scene, "--wait", "--json", *args)
    assert result.code == 0, (result.stdout, result.stderr)
    info = cli("info", result.json()["id"], "--json")
    assert info.code == 0
    return info.json()


def out_files(info: dict) -> list[Path]:
    return sorted((Path(info["folder"]) / job_layout.OUT).glob("[0-9]*.*"))


def centre_colour(path: Path) -> str:
    """The dominant channel of the pixel in the middle: 'red', 'green' or 'blue'."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    return ("red", "green", "blue")[max(range(3), key=lambda i: rgb[i])]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_scene_as_saved_renders_red(cli, home, colour_scene):
    info = submitted(cli, colour_scene, "--frames", "1")
    (frame,) = out_files(info)
    assert centre_colour(frame) == "red"
    assert info["render"] == {}


def test_camera_renders_through_the_named_camera(cli, home, colour_scene):
    before = sha256(colour_scene)
    info = submitted(cli, colour_scene, "--frames", "1", "--camera", "CamBlue")
    (frame,) = out_files(info)
    assert centre_colour(frame) == "blue"
    assert info["render"] == {"camera": "CamBlue"}
    assert sha256(colour_scene) == before  # the user's .blend is never changed


def test_view_layer_renders_only_the_named_layer(cli, home, colour_scene):
    info = submitted(cli, colour_scene, "--frames", "1", "--view-layer", "Green")
    (frame,) = out_files(info)
    assert centre_colour(frame) == "green"  # Green was off in the scene: it is on now
    assert info["render"]["view_layers"] == ["Green"]


def test_resolution_and_percent_set_the_size_of_the_file(cli, home, colour_scene):
    info = submitted(cli, colour_scene, "--frames", "1", "--resolution", "80x60",
                     "--resolution-percent", "50")
    (frame,) = out_files(info)
    with Image.open(frame) as image:
        assert image.size == (40, 30)
    assert info["render"] == {"resolution": "80x60", "resolution_percent": 50}


def exr_channels(data: bytes) -> bytes:
    """The EXR header's channel list (attribute "channels", type "chlist"): its names."""
    start = data.index(b"channels\x00chlist\x00") + len(b"channels\x00chlist\x00")
    size = int.from_bytes(data[start:start + 4], "little")
    return data[start + 4:start + 4 + size]


@pytest.mark.parametrize(("file_format", "extension", "magic"), [
    ("PNG", ".png", b"\x89PNG\r\n\x1a\n"),
    ("OPEN_EXR", ".exr", b"\x76\x2f\x31\x01"),
    ("OPEN_EXR_MULTILAYER", ".exr", b"\x76\x2f\x31\x01"),
    ("JPEG", ".jpg", b"\xff\xd8\xff"),
    ("TIFF", ".tif", b"II*\x00"),
])
def test_format_writes_the_frames_in_that_format(cli, home, colour_scene, file_format,
                                                 extension, magic):
    info = submitted(cli, colour_scene, "--frames", "1", "--format", file_format.lower())
    (frame,) = out_files(info)
    assert frame.name == job_layout.frame_name(1, extension)
    assert job_layout.FORMAT_EXTENSIONS[file_format] == extension
    data = frame.read_bytes()
    assert data.startswith(magic)
    if file_format.startswith("OPEN_EXR"):
        channels = exr_channels(data)
        # A multilayer EXR names its channels by view layer and pass; a plain one R, G, B, A.
        assert (b"Main.Combined.R" in channels) == (file_format == "OPEN_EXR_MULTILAYER")
    else:
        assert centre_colour(frame) == "red"  # Pillow reads it back
    assert info["render"] == {"file_format": file_format}
    assert info["frames"]["done"] == 1 and info["last_frame"]["file"] == str(frame)


def test_samples_and_denoise_reach_blender_and_are_recorded(cli, home, colour_scene):
    info = submitted(cli, colour_scene, "--frames", "1", "--samples", "2", "--denoise")
    assert info["render"] == {"samples": 2, "denoise": True}
    assert info["parameters"]["samples"] == 2 and info["parameters"]["denoise"] is True
    log = cli("logs", info["id"]).stdout
    assert "--samples=2" in log and "--denoise" in log
    assert "braas: render settings over the scene's: {'samples': 2, 'denoise': True}" in log
    task = json.loads((Path(info["folder"]) / job_layout.task_file(Path("."), 0)).read_text())
    assert task["render"] == {"samples": 2, "denoise": True}
    lines = cli("info", info["id"]).stdout
    assert "render     samples 2, denoising" in lines


def test_frame_step_renders_every_kth_frame(cli, home, colour_scene):
    info = submitted(cli, colour_scene, "--frame-step", "2")  # the scene's 1-6
    assert [p.name for p in out_files(info)] == ["000001.png", "000003.png", "000005.png"]
    info = submitted(cli, colour_scene, "--frames", "2-6", "--frame-step", "3")
    assert [p.name for p in out_files(info)] == ["000002.png", "000005.png"]
    assert "every 3rd frame" in cli("info", info["id"]).stdout


def test_estimate_takes_the_same_settings(cli, home, colour_scene):
    result = cli("estimate", colour_scene, "--frames", "1-2", "--resolution", "32x24",
                 "--camera", "CamBlue", "--json")
    assert result.code == 0, result.stderr
    probe = cli("info", result.json()["probe_job"], "--json").json()
    frames = out_files(probe)
    assert frames and all(centre_colour(f) == "blue" for f in frames)
    with Image.open(frames[0]) as image:
        assert image.size == (32, 24)


# --- the worker's side: the settings as argv, checked again in Blender ---------------------


def test_render_args_are_one_argv_item_each():
    args = render_task.render_args({"samples": 8, "resolution": "64x48", "camera": "--Cam x",
                                    "view_layers": ["A", "B"], "file_format": "JPEG",
                                    "denoise": False, "resolution_percent": 25})
    assert args == ["--samples=8", "--resolution-percent=25", "--resolution=64x48",
                    "--camera=--Cam x", "--view-layer=A", "--view-layer=B", "--format=JPEG",
                    "--no-denoise"]
    assert render_task.render_args({}) == []


@pytest.mark.parametrize("render", [
    {"samples": "8"}, {"samples": True}, {"samples": 0}, {"resolution": "64x48;rm"},
    {"camera": ""}, {"view_layers": "A"}, {"file_format": "GIF"}, {"denoise": "yes"},
    {"shell": "x"},
])
def test_a_task_file_with_bad_render_settings_is_refused(tmp_path, render, capsys):
    task = {"task": 0, "scene": "in/scene.blend", "frames": "1", "render": render,
            "blender": {"kind": "python", "command": [sys.executable]}}
    path = tmp_path / "job" / "tasks" / "task-0000.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(task))
    assert render_task.main([str(path)]) == 2
    assert "bad task file" in capsys.readouterr().err


def test_the_worker_checks_the_camera_in_blender(tmp_path, colour_template):
    """A camera the client did not see (another scene file at the centre) fails the task
    with the names Blender knows, before any frame."""
    root = tmp_path / "job-root"
    (root / "in").mkdir(parents=True)
    (root / "in" / "scene.blend").write_bytes(colour_template.read_bytes())
    task = {"task": 0, "attempt": 1, "scene": "in/scene.blend", "frames": "1",
            "device": "CPU", "walltime_seconds": 120, "render": {"camera": "Nope"},
            "blender": {"kind": "python", "command": [sys.executable]}}
    path = root / "job" / "tasks" / "task-0000.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(task))
    done = subprocess.run([sys.executable, str(Path(render_task.__file__)), str(path)],
                          capture_output=True, text=True, timeout=120)
    end = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 1 and end["state"] == "FAILED"
    assert end["reason"] == "the scene has no camera 'Nope' (its cameras: ['CamBlue', 'CamRed'])"
    assert not list((root / "out").glob("0*"))


@pytest.fixture
def linked_camera_scene(tmp_path) -> Path:
    """The colour scene with CamBlue in a linked library (cameras.blend beside it)."""
    out = tmp_path / "user" / "colour.blend"
    out.parent.mkdir(parents=True)
    subprocess.run([sys.executable, str(COLOUR_SCENE), "--", str(out), "--link-blue-camera"],
                   check=True, capture_output=True)
    return out


def test_a_camera_from_a_linked_library_may_be_named(cli, home, linked_camera_scene):
    info = submitted(cli, linked_camera_scene, "--frames", "1", "--camera", "CamBlue")
    (frame,) = out_files(info)
    assert centre_colour(frame) == "blue"
    wrong = cli("submit", linked_camera_scene, "--frames", "1", "--camera", "CamGreen")
    assert wrong.code == 2
    assert wrong.stderr.strip() == ("error: --camera 'CamGreen': colour.blend has no such "
                                    "camera (its cameras: 'CamBlue', 'CamRed')")
    assert len(list((home / "jobs").iterdir())) == 1  # the refused submit left no job
