"""Render one task's frames inside Blender, in one process with persistent data.

Run by ``render_task.py``, never by hand:

    blender -b --factory-startup -noaudio -P blender_render.py -- ARGS
    python blender_render.py -- ARGS          (PyPI ``bpy``)

The scene loads once and Cycles keeps its synced data between frames
(``use_persistent_data``), so a chunk pays load and BVH build once. Each frame is
rendered to a temporary name and moved into ``out/`` when complete, then reported
on stdout as ``BRAAS_FRAME {json}``.

Before the first frame it applies the job's render settings over the scene's (samples,
resolution, camera, view layers, output format, denoising: ``apply_render_settings``; in
memory only, the .blend is never written), then checks that this Blender can render the scene as it asks
(``preflight.py``) and that every file the loaded scene uses is among the job's staged
files (``scene_files.py``); a miss is ``BRAAS_FATAL`` (or, when the job allows missing
files, one ``BRAAS_MISSING`` record each). A frame that raises is reported and this
Blender stops (``BRAAS_STOPPED``): after an error, the state that persistent data keeps
is not trusted, so the worker renders the remaining frames in a fresh Blender.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling stdlib modules
import bpy  # noqa: E402
import job_layout  # noqa: E402
import preflight  # noqa: E402
import scene_files  # noqa: E402
from frames import parse_frames  # noqa: E402
from image_check import is_valid_image  # noqa: E402

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
    parser.add_argument("--first", default="", help="frames to render before the others (scout)")
    parser.add_argument("--staged", default="", help="the job's in/: every used file is here")
    parser.add_argument("--allow-missing", action="store_true")
    parser.add_argument("--allow-older-blender", action="store_true")
    add_render_setting_args(parser)
    # A still split by samples: --frames are part numbers, each a subset of this frame.
    parser.add_argument("--split-frame", type=int)
    parser.add_argument("--split-parts", type=int)
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


def add_render_setting_args(parser: argparse.ArgumentParser) -> None:
    """The job's render settings over the scene's, as render_task.render_args writes them
    (each dest a job_layout.RENDER_SETTINGS key); absent: the scene's own."""
    parser.add_argument("--samples", type=int)
    parser.add_argument("--resolution", help="WxH pixels")
    parser.add_argument("--resolution-percent", type=int)
    parser.add_argument("--camera")
    parser.add_argument("--view-layer", dest="view_layers", action="append", default=[])
    parser.add_argument("--format", dest="file_format")
    parser.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None)


def use_output_format(scene, file_format: str) -> None:
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0: a multilayer EXR is its own kind
        settings.media_type = "MULTI_LAYER_IMAGE" if file_format == "OPEN_EXR_MULTILAYER" \
            else "IMAGE"
    settings.file_format = file_format  # Blender fits the colour mode (JPEG: no alpha)


def apply_render_settings(scene, args) -> str:
    """Set the job's render settings over the scene's (in memory: the .blend on disk is
    never written); why they cannot be applied, or ''."""
    if args.camera is not None:
        camera = bpy.data.objects.get(args.camera)
        if camera is None or camera.type != "CAMERA":
            found = sorted(o.name for o in bpy.data.objects if o.type == "CAMERA")
            return f"the scene has no camera {args.camera!r} (its cameras: {found})"
        scene.camera = camera
    if args.view_layers:
        names = [layer.name for layer in scene.view_layers]
        unknown = [name for name in args.view_layers if name not in names]
        if unknown:
            return f"the scene has no view layer {unknown[0]!r} (its view layers: {names})"
        for layer in scene.view_layers:
            layer.use = layer.name in args.view_layers
        scene.render.use_single_layer = False  # every chosen layer, not only the active one
    if args.samples is not None:
        scene.cycles.samples = args.samples
    if args.resolution is not None:
        width, height = (int(side) for side in args.resolution.split("x"))
        scene.render.resolution_x, scene.render.resolution_y = width, height
    if args.resolution_percent is not None:
        scene.render.resolution_percentage = args.resolution_percent
    if args.denoise is not None:
        scene.cycles.use_denoising = args.denoise
    if args.file_format is not None:
        use_output_format(scene, args.file_format)
    applied = {key: value for key, value in vars(args).items()
               if key in job_layout.RENDER_SETTINGS and value not in (None, [])}
    if applied:
        print(f"braas: render settings over the scene's: {applied}", flush=True)
    return ""



def check_scene(scene, args) -> str:
    """Why this Blender must not render ``scene``, or ''; reports allowed missing files. A
    split still's part renders undenoised (the merge denoises, where it runs)."""
    found = preflight.problems(scene, False if args.split_parts else None)
    if found:
        return found[0]
    if preflight.file_is_newer(bpy.data.version, bpy.app.version) and not args.allow_older_blender:
        return (f"the scene was saved by Blender {preflight.version_text(bpy.data.version)}, "
                f"newer than this Blender {bpy.app.version_string}: render it with "
                f"{preflight.version_text(bpy.data.version)} or newer (or allow an older Blender)")
    if not args.staged:
        return ""
    for used in scene_files.used_files():
        staged = scene_files.inside(used["path"], args.staged)
        if used["exists"] and staged:
            continue
        if used["cache"] and not used["exists"] and staged:
            print(f"braas: {used['owner']} has no baked cache at {used['path']}", flush=True)
            continue
        where = used["path"] if not staged else os.path.relpath(used["path"], args.staged)
        if used["exists"]:  # present here, but not one of the job's files
            return f"{used['owner']} uses {where}, which is not among the job's staged files"
        if not args.allow_missing:
            return f"{used['owner']} uses {where}, which is missing from the job's staged files"
        report("MISSING", file=where, owner=used["owner"])
    return ""


def render_order(frames: list[int], first: list[int]) -> list[int]:
    """``first`` (the scout frames) before the others, each frame once."""
    head = [f for f in first if f in set(frames)]
    rest = set(frames) - set(head)
    return head + [f for f in frames if f in rest]


def main() -> int:
    args = parse_args()
    frames = render_order(parse_frames(args.frames),
                          parse_frames(args.first) if args.first else [])
    bpy.ops.wm.open_mainfile(filepath=args.scene, load_ui=False, use_scripts=args.allow_scripts)
    scene = bpy.context.scene
    use_still_image_output(scene)
    # The job's settings first: the checks below judge the scene as it will render.
    reason = apply_render_settings(scene, args) or check_scene(scene, args)
    if reason:
        report("FATAL", reason=reason)
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
    scene.render.use_file_extension = True

    # Blender writes each frame here first, then it moves into out/ whole. One folder per
    # Blender (tasks of a job run side by side), gone when it ends.
    partial_dir = os.path.join(args.out, job_layout.partial_dir(os.getpid()))
    os.makedirs(partial_dir, exist_ok=True)
    try:
        return render_frames(scene, frames, args, partial_dir)
    finally:
        shutil.rmtree(partial_dir, ignore_errors=True)


def use_split_part(scene, part: int, parts: int, denoise: bool) -> str:
    """Render samples of one part of a still split by samples (parts count from 1): every
    part the same number (part_samples), adaptive sampling and denoising off, into a
    32-bit multilayer EXR that Cycles' merge weighs by the scene's total. With ``denoise``
    (the job's denoising), each rendered view layer also stores its denoising passes
    (Denoising Normal, Albedo, Depth), which the merge averages to denoise the still once.
    Its file name."""
    each = job_layout.part_samples(scene.cycles.samples, parts)
    cycles = scene.cycles
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.sample_offset = (part - 1) * each
    if "use_sample_subset" not in cycles.bl_rna.properties:  # refused at submit (SPLIT_BLENDER)
        raise RuntimeError(f"Blender {bpy.app.version_string} cannot render a subset of the "
                           "samples (--split needs Blender 5.0 or newer)")
    cycles.samples = each * parts
    cycles.use_sample_subset = True
    cycles.sample_subset_length = each
    if denoise:
        for layer in scene.view_layers:
            layer.cycles.denoising_store_passes = True
    use_output_format(scene, "OPEN_EXR_MULTILAYER")
    scene.render.image_settings.color_depth = "32"
    print(f"braas: part {part} of {parts}: samples {(part - 1) * each} to "
          f"{part * each - 1} of {each * parts}"
          + (", with the denoising passes for the merge's denoise" if denoise else ""),
          flush=True)
    return job_layout.part_name(part)


def render_frames(scene, frames: list[int], args, partial_dir: str) -> int:
    total_samples = scene.cycles.samples  # a split still's parts divide these
    denoise = scene.cycles.use_denoising  # the job's (or the scene's): the merge denoises
    for frame in frames:
        if args.cancel_marker and os.path.exists(args.cancel_marker):
            print("braas: cancel marker found, stopping", flush=True)
            return 3
        started = time.monotonic()
        try:
            scene.frame_set(frame if args.split_frame is None else args.split_frame)
            if args.camera is not None:  # a timeline marker bound to a camera switches it
                scene.camera = bpy.data.objects[args.camera]
            if args.split_frame is not None:  # ``frame`` is a part of the still
                scene.cycles.samples = total_samples
                name = use_split_part(scene, frame, args.split_parts, denoise)
            else:
                name = job_layout.frame_name(frame, scene.render.file_extension)
            scene.render.filepath = os.path.join(partial_dir, name)
            bpy.ops.render.render(write_still=True)
            written = scene.render.filepath
            final = os.path.join(args.out, name)
            # Blender may write a file cut short (a full disk) without raising: only a
            # whole image enters out/, however this process is stopped afterwards.
            if not is_valid_image(written):
                raise OSError(f"Blender wrote {name} incompletely (is the disk full?)")
            os.replace(written, final)
        except (RuntimeError, OSError) as err:
            report("FRAME", frame=frame, state="failed", reason=str(err).strip())
            report("STOPPED", after=frame)
            return 1
        report("FRAME", frame=frame, state="done", file=final,
               seconds=round(time.monotonic() - started, 3))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # os._exit: a bpy process can spend seconds tearing down; the frames are on disk. It
    # skips Blender's removal of its session folder (bpy.app.tempdir), so that goes first.
    shutil.rmtree(bpy.app.tempdir, ignore_errors=True)
    os._exit(code)
