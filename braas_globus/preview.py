"""Look at a job's frames: a contact sheet (Pillow) and, for an animation, an H.264 video
made by the FFmpeg inside Blender (blender_scripts/make_video.py).

Both go to the job folder's ``preview/`` (job_layout.PREVIEW): ``contact-sheet.png`` and
``preview.mp4``. They show what the job folder holds now, so they work on a running job:
a frame not rendered (yet), or whose file is not a whole image, is a plain tile labelled
"missing"; a frame that failed (the store's FAILED rows) one labelled "failed". A frame
Pillow cannot read (OpenEXR, say) is a tile labelled with its format. The video plays
the rendered frames in order, at the scene's frame rate, skipping the others.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .blender import find_blender, run_blender_script
from .blender_scripts import MAKE_VIDEO
from .collect import frame_states, valid_frames_on_disk
from .merge import merged_file
from .store import JobRecord
from .worker import job_layout
from .worker.frames import parse_frames

if TYPE_CHECKING:
    from .service import Service

CONTACT_SHEET = f"{job_layout.PREVIEW}/contact-sheet.png"
VIDEO = f"{job_layout.PREVIEW}/preview.mp4"
DEFAULT_COLUMNS = 8
MAX_TILES = 600  # a longer job's sheet shows this many of its frames, evenly spread
THUMB_WIDTH = 160
LABEL_HEIGHT = 16
DEFAULT_FPS = (24, 1.0)  # where the staged scene cannot be read

BACKGROUND = (24, 24, 24)  # behind transparent pixels and the labels
MISSING = (64, 64, 64)
FAILED = (110, 24, 24)
UNREADABLE = (40, 48, 72)
TEXT = (235, 235, 235)


@dataclass
class Sheet:
    path: Path
    columns: int
    rows: int
    tile: tuple[int, int]  # a tile's width and height: the thumbnail and its label below
    shown: list[int] = field(default_factory=list)  # the frames on the sheet, in order


def preview(service: Service, job_id: str, columns: int | None = None,
            video: bool = True) -> dict[str, Any]:
    """Write the job's contact sheet, and its video unless ``video`` is False or the job has
    fewer than two rendered frames; returns what was written and each frame's standing."""
    job, warning = service.refresh(job_id)
    for backend in service.backends(job):  # a centre's frames come back with its results
        backend.collect(job)
    job = service.store.job(job.id)
    frames = parse_frames(job.frames)
    on_disk = valid_frames_on_disk(job.folder / job_layout.OUT)
    states = frame_states(job, service.store)
    if job.split:  # a still split by samples: the merged still, not its parts
        frames = [job.still_frame]
        merged = merged_file(job.folder)
        on_disk = {frames[0]: merged} if merged else {}
        states = {frames[0]: job.state.value if job.state.value == "FAILED" else "QUEUED"}
    rendered = [f for f in frames if f in on_disk]
    failed = [f for f in frames if f not in on_disk and states.get(f) == "FAILED"]
    missing = [f for f in frames if f not in on_disk and f not in failed]
    sheet = contact_sheet(job, frames, on_disk, set(failed), columns)
    result: dict[str, Any] = {
        "job": job.id, "state": job.state.value, "contact_sheet": str(sheet.path),
        "columns": sheet.columns, "rows": sheet.rows, "tile": list(sheet.tile),
        "frames_shown": sheet.shown, "rendered": rendered, "missing": missing,
        "failed": failed, "video": None, "video_note": None, "fps": None, "warning": warning}
    if not video:
        result["video_note"] = "not asked for (--no-video)"
    elif len(rendered) < 2:
        result["video_note"] = (f"{len(rendered)} frame rendered: a video needs two or more"
                                if len(frames) > 1 else "a still: no video")
    else:
        fps, fps_base, note = scene_fps(job)
        result["video"] = str(make_video(service, job, [on_disk[f] for f in rendered],
                                         fps, fps_base))
        result["fps"] = round(fps / fps_base, 3)
        result["video_note"] = note
    return result


# --- the contact sheet -------------------------------------------------------------------
def spread(frames: list[int], most: int) -> list[int]:
    """At most ``most`` of ``frames``, evenly spaced, the first and the last among them."""
    if len(frames) <= most:
        return frames
    step = (len(frames) - 1) / (most - 1)
    return [frames[round(i * step)] for i in range(most)]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):  # Pillow without FreeType: its bitmap font
        return ImageFont.load_default()


def _thumbnail(path: Path, size: tuple[int, int]) -> Image.Image | None:
    """The frame fitted into ``size`` on the background; None if Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", size)  # JPEG: decode at a smaller scale
            rgba = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    rgba = ImageOps.contain(rgba, size, Image.Resampling.LANCZOS)  # up or down, kept aspect
    tile = Image.new("RGB", size, BACKGROUND)
    tile.paste(rgba, ((size[0] - rgba.width) // 2, (size[1] - rgba.height) // 2), rgba)
    return tile


def _thumb_size(paths: list[Path]) -> tuple[int, int]:
    """THUMB_WIDTH wide, as tall as the first readable frame's aspect makes it (16:9 else)."""
    for path in paths[:5]:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError):
            continue
        if width > 0 and height > 0:
            return THUMB_WIDTH, max(24, min(3 * THUMB_WIDTH, round(THUMB_WIDTH * height / width)))
    return THUMB_WIDTH, round(THUMB_WIDTH * 9 / 16)


def contact_sheet(job: JobRecord, frames: list[int], on_disk: dict[int, Path],
                  failed: set[int], columns: int | None = None) -> Sheet:
    """Write ``preview/contact-sheet.png``: a tile per frame in frame order, labelled."""
    shown = spread(frames, MAX_TILES)
    columns = max(1, min(columns or DEFAULT_COLUMNS, len(shown)))
    rows = math.ceil(len(shown) / columns)
    thumb = _thumb_size([on_disk[f] for f in shown if f in on_disk])
    tile = (thumb[0], thumb[1] + LABEL_HEIGHT)
    sheet = Image.new("RGB", (columns * tile[0], rows * tile[1]), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(LABEL_HEIGHT - 4)
    for index, frame in enumerate(shown):
        x, y = (index % columns) * tile[0], (index // columns) * tile[1]
        label = str(frame)
        picture = _thumbnail(on_disk[frame], thumb) if frame in on_disk else None
        if picture is not None:
            sheet.paste(picture, (x, y))
        else:
            if frame in on_disk:
                colour, word = UNREADABLE, on_disk[frame].suffix.lstrip(".").upper()
            else:
                colour, word = (FAILED, "failed") if frame in failed else (MISSING, "missing")
            draw.rectangle((x + 1, y + 1, x + thumb[0] - 2, y + thumb[1] - 2), fill=colour)
            draw.text((x + thumb[0] // 2, y + thumb[1] // 2), word, fill=TEXT, font=font,
                      anchor="mm")
            label = f"{frame} {word}"
        draw.text((x + 3, y + thumb[1] + LABEL_HEIGHT // 2), label, fill=TEXT, font=font,
                  anchor="lm")
    path = job.folder / CONTACT_SHEET
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    sheet.save(partial, format="PNG")
    os.replace(partial, path)
    return Sheet(path, columns, rows, tile, shown)


# --- the video ---------------------------------------------------------------------------
def scene_fps(job: JobRecord) -> tuple[int, float, str | None]:
    """The staged scene's frame rate (fps, fps_base), and a note where it is a default."""
    from .errors import UsageError
    from .scene_info import read_scene_info

    if not job.entry:
        return (*DEFAULT_FPS, f"the job has no staged scene: {DEFAULT_FPS[0]} fps")
    path = job.folder / job.entry
    try:
        scene = read_scene_info(path)
    except UsageError as err:  # not readable, or damaged: said in its own words
        return (*DEFAULT_FPS, f"{err}: {DEFAULT_FPS[0]} fps")
    fps, base = scene.fps, scene.fps_base
    if fps < 1 or not base > 0:
        return (*DEFAULT_FPS, f"{path} has a frame rate of {fps}/{base}: {DEFAULT_FPS[0]} fps")
    return fps, base, None


def make_video(service: Service, job: JobRecord, paths: list[Path], fps: int,
               fps_base: float) -> Path:
    """Write ``preview/preview.mp4`` from ``paths`` in order; RunError if Blender fails."""
    path = job.folder / VIDEO
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    listing = path.with_name(".video-frames.txt")
    listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
    try:
        partial.unlink(missing_ok=True)
        run_blender_script(find_blender(service.settings), MAKE_VIDEO,
                           ["--out", str(partial), "--fps", str(fps),
                            "--fps-base", repr(fps_base), "--list", str(listing)],
                           timeout=max(600.0, 2.0 * len(paths)))
        os.replace(partial, path)
    finally:
        listing.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return path
