"""`braas-globus preview`: the contact sheet (read back with Pillow) and the video (read back
by Blender's own FFmpeg decoder), on a real local render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from PIL import Image, ImageChops, ImageStat

from braas_globus import preview as preview_module
from braas_globus.settings import load_settings
from braas_globus.store import Store

from .test_local_jobs import submit


def video_facts(video: Path, scene: Path) -> dict:
    """The video as Blender's decoder reads it, and the scene's own frame rate."""
    code = ("import json, sys, bpy\n"
            "bpy.ops.wm.open_mainfile(filepath=sys.argv[2], load_ui=False)\n"
            "r = bpy.context.scene.render\n"
            "fps = r.fps / r.fps_base\n"
            "clip = bpy.data.movieclips.load(sys.argv[1])\n"
            "print('FACTS', json.dumps({'frames': clip.frame_duration, 'size': list(clip.size),"
            " 'fps': clip.fps, 'scene_fps': fps}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(video), str(scene)], check=True,
                          capture_output=True, text=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("FACTS "))
    return json.loads(line.split(" ", 1)[1])


def tile_picture(sheet: Image.Image, index: int, columns: int, tile: list[int]) -> Image.Image:
    """The thumbnail part of tile ``index`` (the label band below it left out)."""
    x, y = (index % columns) * tile[0], (index // columns) * tile[1]
    return sheet.crop((x, y, x + tile[0], y + tile[1] - preview_module.LABEL_HEIGHT))


def share_of(picture: Image.Image, colour: tuple[int, int, int]) -> float:
    """How much of ``picture`` is exactly ``colour``."""
    rgb = picture.convert("RGB")
    counts = dict((c, n) for n, c in rgb.getcolors(maxcolors=rgb.width * rgb.height) or [])
    return counts.get(colour, 0) / (rgb.width * rgb.height)


def test_preview_of_a_job_with_a_missing_and_a_failed_frame(cli, scene, home):
    blend = scene("anim6")
    job = submit(cli, blend)
    assert job["state"] == "FINISHED", job
    folder = Path(job["folder"])
    (folder / "out" / "000003.png").unlink()  # missing: never rendered, as far as the sheet goes
    (folder / "out" / "000005.png").unlink()
    store = Store(load_settings().store_path)
    store.record_frame(job["id"], 5, 0, done=False, reason="a test's failure")
    store.close()

    result = cli("preview", job["id"][:12], "--columns", "4", "--json")
    assert result.code == 0, result.stderr
    got = result.json()
    assert got["rendered"] == [1, 2, 4, 6] and got["missing"] == [3] and got["failed"] == [5]
    assert got["frames_shown"] == [1, 2, 3, 4, 5, 6]
    assert (got["columns"], got["rows"]) == (4, 2)
    sheet_path = Path(got["contact_sheet"])
    assert sheet_path == folder / "preview" / "contact-sheet.png"

    with Image.open(sheet_path) as sheet:
        sheet.load()
    tile = got["tile"]
    assert sheet.size == (4 * tile[0], 2 * tile[1])
    assert tile[0] / (tile[1] - preview_module.LABEL_HEIGHT) == 64 / 48  # the frames' aspect
    tiles = [tile_picture(sheet, i, 4, tile) for i in range(8)]

    def unlike(picture: Image.Image, frame: int) -> float:  # how far a tile is from a frame
        with Image.open(folder / "out" / f"{frame:06d}.png") as image:
            scaled = image.convert("RGB").resize(picture.size)
        return max(ImageStat.Stat(ImageChops.difference(picture, scaled)).mean)

    # In frame order: each tile is its own frame (the camera orbits: the next one differs).
    assert unlike(tiles[0], 1) < unlike(tiles[0], 2) and unlike(tiles[3], 4) < unlike(tiles[3], 6)
    assert unlike(tiles[5], 6) < unlike(tiles[5], 4)
    for index in (0, 1, 3, 5):  # rendered: the frame itself, not a plain tile
        assert share_of(tiles[index], preview_module.MISSING) < 0.05
        assert share_of(tiles[index], preview_module.FAILED) < 0.05
        assert max(ImageStat.Stat(tiles[index]).stddev) > 5  # a picture, not one colour
    assert share_of(tiles[2], preview_module.MISSING) > 0.7  # frame 3: the plain "missing"
    assert share_of(tiles[4], preview_module.FAILED) > 0.7  # frame 5: "failed"
    for index in (6, 7):  # past the last frame: background
        assert share_of(tiles[index], preview_module.BACKGROUND) == 1.0

    video = Path(got["video"])
    assert video == folder / "preview" / "preview.mp4"
    facts = video_facts(video, blend)
    assert facts["frames"] == 4  # the frames rendered, in order
    assert facts["size"] == [64, 48]
    assert abs(facts["fps"] - facts["scene_fps"]) < 0.01 and got["fps"] == facts["scene_fps"]
    assert not list((folder / "preview").glob(".*"))  # no partial file left behind

    human = cli("preview", job["id"], "--no-video")  # the human form; the video is kept
    assert human.code == 0, human.stderr
    assert str(sheet_path) in human.stdout and "4/6 frames rendered" in human.stdout
    assert "--no-video" in human.stderr

    # No frame on disk yet (a job just started looks the same): a sheet of plain tiles, no
    # video, and exit 0.
    for frame in (folder / "out").glob("*.png"):
        frame.unlink()
    empty = cli("preview", job["id"], "--json")
    assert empty.code == 0, empty.stderr
    got = empty.json()
    assert got["rendered"] == [] and got["missing"] == [1, 2, 3, 4, 6] and got["failed"] == [5]
    assert got["video"] is None and "video needs two" in got["video_note"]
    assert (got["columns"], got["rows"]) == (6, 1)  # at most 8 a row: all six in one
    with Image.open(got["contact_sheet"]) as sheet:
        sheet.load()
    assert sheet.size == (6 * got["tile"][0], got["tile"][1])
    empty_tiles = [tile_picture(sheet, i, 6, got["tile"]) for i in range(6)]
    assert all(share_of(t, preview_module.MISSING) > 0.7 for i, t in enumerate(empty_tiles)
               if i != 4)
    assert share_of(empty_tiles[4], preview_module.FAILED) > 0.7


def test_preview_of_an_unknown_job_or_bad_columns_is_a_usage_error(cli, home):
    result = cli("preview", "no-such-job")
    assert result.code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    bad = cli("preview", "last", "--columns", "0")
    assert bad.code == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_spread_keeps_the_first_and_last_frames():
    frames = list(range(1, 1001))
    shown = preview_module.spread(frames, 7)
    assert len(shown) == 7 and shown[0] == 1 and shown[-1] == 1000
    assert shown == sorted(set(shown))
    assert preview_module.spread([3, 4], 7) == [3, 4]


def test_exr_frames_are_labelled_tiles_on_the_sheet_and_play_in_the_video(tmp_path, home):
    """Pillow reads no OpenEXR: the sheet says EXR; Blender reads it, so the video has it.
    67x51 frames: the video is rounded down to even numbers (H.264 4:2:0)."""
    out = tmp_path / "job" / "out"
    out.mkdir(parents=True)
    code = ("import sys, bpy\n"
            "s = bpy.context.scene\n"
            "if hasattr(s.render.image_settings, 'media_type'):\n"
            "    s.render.image_settings.media_type = 'IMAGE'\n"
            "s.render.image_settings.file_format = 'OPEN_EXR'\n"
            "for i in (1, 2, 3):\n"
            "    im = bpy.data.images.new(f'f{i}', 67, 51, float_buffer=True)\n"
            "    im.generated_color = (i / 3, 0.2, 0.5, 1)\n"
            "    im.save_render(f'{sys.argv[1]}/{i:06d}.exr', scene=s)\n")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True)
    on_disk = {n: out / f"{n:06d}.exr" for n in (1, 2, 3)}
    assert on_disk[1].read_bytes()[:4] == b"v/1\x01"  # a real OpenEXR file
    job = SimpleNamespace(folder=tmp_path / "job")
    sheet = preview_module.contact_sheet(job, [1, 2, 3, 4], on_disk, failed=set())
    assert (sheet.columns, sheet.rows) == (4, 1) and sheet.shown == [1, 2, 3, 4]
    with Image.open(sheet.path) as image:
        image.load()
    tiles = [tile_picture(image, i, 4, list(sheet.tile)) for i in range(4)]
    assert all(share_of(t, preview_module.UNREADABLE) > 0.7 for t in tiles[:3])
    assert share_of(tiles[3], preview_module.MISSING) > 0.7

    service = SimpleNamespace(settings=load_settings())
    video = preview_module.make_video(service, job, list(on_disk.values()), 30, 1.001)
    code = ("import sys, bpy\n"
            "clip = bpy.data.movieclips.load(sys.argv[1])\n"
            "print('FACTS', clip.frame_duration, clip.size[0], clip.size[1], clip.fps)\n")
    done = subprocess.run([sys.executable, "-c", code, str(video)], check=True,
                          capture_output=True, text=True)
    facts = next(line for line in done.stdout.splitlines() if line.startswith("FACTS ")).split()
    assert facts[1:4] == ["3", "66", "50"] and abs(float(facts[4]) - 30 / 1.001) < 0.01
