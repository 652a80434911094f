"""Pack every packable asset into a staged copy of a .blend (packed mode).

    python pack_into_blend.py -- --blend STAGED.blend

Runs on the copy that blender-asset-tracer already wrote into the stage, never on
the user's file: the user's file and open session stay as they were. Images,
sounds, fonts and linked libraries go inside; caches and volumes cannot be packed
by Blender and stay beside the .blend.
"""

import argparse
import json
import os
import sys

import bpy


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="pack_into_blend.py")
    parser.add_argument("--blend", required=True)
    args = parser.parse_args(argv)
    bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=False)
    if bpy.data.libraries:
        bpy.ops.file.pack_libraries()
    # One by one rather than pack_all(), which gives up on the first missing file
    # (a submit with --allow-missing still packs everything that exists).
    packed, skipped = 0, []
    for block in [*bpy.data.images, *bpy.data.sounds, *bpy.data.fonts]:
        if block.packed_file or not block.filepath or block.filepath == "<builtin>":
            continue
        if isinstance(block, bpy.types.Image) and block.source not in ("FILE", "TILED"):
            continue  # sequences and movies cannot be packed; they travel as files
        if not os.path.exists(bpy.path.abspath(block.filepath)):
            skipped.append(block.filepath)
            continue
        block.pack()
        packed += 1
    bpy.ops.wm.save_mainfile(filepath=args.blend)
    print("BRAAS_PACKED " + json.dumps({"packed": packed, "missing": skipped}), flush=True)


if __name__ == "__main__":
    main()
