"""Complete a staged copy of a scene by Blender's account, and pack it (packed mode).

    python stage_scene.py -- --blend STAGED.blend --stage DIR --folders FOLDERS.json [--pack]

Runs on the copy that blender-asset-tracer wrote into the stage, never on the user's
file. Blender, with the staged scene loaded, lists every file it uses
(``worker/scene_files.py``, the rule the worker checks again before rendering). A file
the parser missed (an image used inside a library, say) is copied in from where the
user has it: FOLDERS.json maps staged folders to the user's folders they came from. Then,
with ``--pack``, every packable asset goes inside the .blend; caches, sequences, movies
and what linked libraries use stay beside it.

Prints one ``BRAAS_STAGE {json}`` line: Blender's and the file's versions, what this
Blender lacks for the scene, the files copied in, missing, or outside the stage, and the
staged files still used. Stdlib and bpy only.
"""

import argparse
import json
import os
import shutil
import sys

import bpy

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker")
sys.path.insert(0, WORKER)  # the worker's modules: one rule for what a scene uses
import preflight  # noqa: E402
import scene_files  # noqa: E402


def source_of(path: str, folders: dict[str, str], stage: str) -> str:
    """Where the user has the file that belongs at staged ``path``: the deepest mapped
    staged folder above it, then the same relative path under its source folder. A path
    that leaves the stage (a relative path the parser kept, to a file it did not find)
    is taken relative to the stage's root, as the user's scene would read it."""
    best = max((d for d in folders if scene_files.inside(path, d)), key=len, default=stage)
    return os.path.normpath(os.path.join(folders[best], os.path.relpath(path, best)))


def fill_in(stage: str, folders: dict[str, str]) -> list[dict]:
    """Copy in what the scene uses inside the stage but the parser did not stage."""
    copied = []
    for used in scene_files.used_files():
        if used["exists"] or not scene_files.inside(used["path"], stage):
            continue
        source = source_of(used["path"], folders, stage)
        if os.path.exists(source):
            scene_files.copy_in(source, used["path"])
            copied.append({"file": source, "owner": used["owner"],
                           "staged": os.path.relpath(used["path"], stage)})
    return copied


def final_state(stage: str, folders: dict[str, str]) -> dict:
    """The staged files the scene uses, and what it uses that is missing or not staged."""
    used, missing, outside, unbaked = set(), [], [], []
    for entry in scene_files.used_files():
        staged = scene_files.inside(entry["path"], stage)
        source = source_of(entry["path"], folders, stage) if entry["relative"] else entry["path"]
        if entry["cache"] and not os.path.exists(source):
            # Never baked where the user has it. Blender makes a fluid cache folder when it
            # opens the scene: that is no file of the user's, so it is not sent.
            unbaked.append({"file": source, "owner": entry["owner"]})
            if staged and os.path.isdir(entry["path"]):
                shutil.rmtree(entry["path"])
            continue
        if entry["exists"] and staged:
            used.add(os.path.relpath(entry["path"], stage))
        elif entry["exists"]:
            outside.append({"file": entry["path"], "owner": entry["owner"]})
        else:
            missing.append({"file": source, "owner": entry["owner"]})
    return {"used": sorted(used), "missing": missing, "outside": outside, "unbaked": unbaked}


def pack_everything() -> None:
    if bpy.data.libraries and all(os.path.exists(bpy.path.abspath(lib.filepath))
                                  for lib in bpy.data.libraries):
        bpy.ops.file.pack_libraries()  # (a missing library is left linked, and reported)
    # One by one rather than pack_all(), which gives up on the first missing file
    # (a submit with --allow-missing still packs everything that exists).
    for block in [*bpy.data.images, *bpy.data.sounds, *bpy.data.fonts]:
        if block.library or block.packed_file or not block.filepath or \
                block.filepath == "<builtin>":
            continue
        if isinstance(block, bpy.types.Image) and block.source not in ("FILE", "TILED"):
            continue  # sequences and movies cannot be packed; they travel as files
        if not scene_files.exists(bpy.path.abspath(block.filepath, library=block.library)):
            continue
        block.pack()


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="stage_scene.py")
    parser.add_argument("--blend", required=True)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--folders", required=True)
    parser.add_argument("--pack", action="store_true")
    args = parser.parse_args(argv)
    with open(args.folders, encoding="utf-8") as stream:
        folders = json.load(stream)
    bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=False)
    file_version = list(bpy.data.version)
    copied = fill_in(args.stage, folders)
    if copied:  # Blender read those files as missing: load the scene again with them
        bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=False)
    if args.pack:
        pack_everything()
        bpy.ops.wm.save_mainfile(filepath=args.blend)
    print("BRAAS_STAGE " + json.dumps({
        "blender_version": list(bpy.app.version), "file_version": file_version,
        "problems": preflight.problems(bpy.context.scene), "copied": copied,
        # As the job's --denoise / --no-denoise would render it (in memory; nothing saved).
        "problems_by_denoise": {"on": preflight.problems(bpy.context.scene, True),
                                "off": preflight.problems(bpy.context.scene, False)},
        # What a split still (--split) is checked against at submit.
        "render": {"samples": int(bpy.context.scene.cycles.samples),
                   "denoise": bool(bpy.context.scene.cycles.use_denoising)},
        # What --camera may name: every camera object, from linked libraries too.
        "cameras": sorted({o.name for o in bpy.data.objects if o.type == "CAMERA"}),
        **final_state(args.stage, folders),
    }), flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # os._exit skips Blender's own exit, which removes its session folder (bpy.app.tempdir,
    # blender_XXXXXX in the temporary folder): one was left behind by every staging.
    shutil.rmtree(bpy.app.tempdir, ignore_errors=True)
    os._exit(0)  # a fluid or smoke scene can abort in mantaflow at shutdown: all is saved
