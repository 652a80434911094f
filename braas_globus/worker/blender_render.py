"""Render one task's frames inside Blender, in one process with persistent data.

Run by ``render_task.py``, never by hand:

    blender -b --factory-startup -noaudio -P blender_render.py -- ARGS
    python blender_render.py -- ARGS          (PyPI ``bpy``)

The scene loads once and Cycles keeps its synced data between frames
(``use_persistent_data``), so a chunk pays load and BVH build once. Each frame is
rendered to a temporary name and moved into ``out/`` when complete, then reported
on stdout as ``BRAAS_FRAME {json}``; a frame that raises is reported and the rest go on.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling stdlib modules
from frames import parse_frames  # noqa: E402

import bpy  # noqa: E402

GPU_DEVICE_TYPES = ("CUDA", "OPTIX", "HIP", "ONEAPI", "METAL")


def report(kind: str, **fields) -> None:
    print(f"BRAAS_{kind} " + json.dumps(fields), flush=True)


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="blender_render.py")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--allow-scripts", action="store_true")
    parser.add_argument("--cancel-marker", default="")
    return parser.parse_args(argv)


def use_device(scene, device: str) -> None:
    if device == "CPU":
        scene.cycles.device = "CPU"
        return
    prefs = bpy.context.preferences.addons["cycles"].preferences
    prefs.compute_device_type = device
    prefs.refresh_devices()
    matching = [d for d in prefs.devices if d.type == device]
    if not matching:
        raise RuntimeError(f"no {device} device on this node (found: "
                           f"{sorted({d.type for d in prefs.devices})})")
    for dev in prefs.devices:
        dev.use = dev.type == device
    scene.cycles.device = "GPU"
    print(f"braas: rendering on {[d.name for d in matching]}", flush=True)


def use_still_image_output(scene) -> None:
    """A movie format cannot hold one file per frame: fall back to PNG."""
    if scene.render.is_movie_format:
        settings = scene.render.image_settings
        if hasattr(settings, "media_type"):  # Blender 5.0 splits media type from format
            settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        print("braas: the scene writes a movie; frames are written as PNG", flush=True)


def main() -> int:
    args = parse_args()
    frames = parse_frames(args.frames)
    bpy.ops.wm.open_mainfile(filepath=args.scene, load_ui=False, use_scripts=args.allow_scripts)
    scene = bpy.context.scene
    if scene.render.engine != "CYCLES":
        report("FATAL", reason=f"the scene renders with {scene.render.engine}; braas-globus renders Cycles scenes only")
        return 1
    try:
        use_device(scene, args.device)
    except RuntimeError as err:
        report("FATAL", reason=str(err))
        return 1
    if args.threads > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = args.threads
    scene.render.use_persistent_data = True
    use_still_image_output(scene)
    scene.render.use_file_extension = True

    partial_dir = os.path.join(args.out, ".partial")
    os.makedirs(partial_dir, exist_ok=True)
    for frame in frames:
        if args.cancel_marker and os.path.exists(args.cancel_marker):
            print("braas: cancel marker found, stopping", flush=True)
            return 3
        started = time.monotonic()
        try:
            scene.frame_set(frame)
            name = f"{frame:06d}{scene.render.file_extension}"  # the original's ###### numbering
            scene.render.filepath = os.path.join(partial_dir, name)
            bpy.ops.render.render(write_still=True)
            written = scene.render.filepath
            final = os.path.join(args.out, name)
            os.replace(written, final)
        except (RuntimeError, OSError) as err:
            report("FRAME", frame=frame, state="failed", reason=str(err).strip())
            continue
        report("FRAME", frame=frame, state="done", file=final,
               seconds=round(time.monotonic() - started, 3))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # os._exit: a bpy process can spend seconds tearing down; the frames are on disk.
    os._exit(code)
