"""Baseline renders for bench_local_render.py: what `blender -b scene.blend -s A -e B -a` does.

    python plain_render.py -- SCENE OUT_DIR START END

No persistent data (Blender's default), frames written by Blender's own animation render.
"""

import sys

import bpy

scene_path, out_dir, start, end = sys.argv[sys.argv.index("--") + 1 :]
bpy.ops.wm.open_mainfile(filepath=scene_path, load_ui=False, use_scripts=False)
scene = bpy.context.scene
scene.frame_start, scene.frame_end = int(start), int(end)
scene.render.filepath = f"{out_dir}/######"
bpy.ops.render.render(animation=True)
