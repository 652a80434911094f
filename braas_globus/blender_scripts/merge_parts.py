"""Merge a still's parts (rendered by sample subsets, ``--split``) into the still.

    python merge_parts.py -- --scene IN.blend --out OUT --frame F --part P1 --part P2 ...
                             [the job's render settings, as blender_render.py takes them]

Run by ``braas_globus.merge`` after every part is in. Cycles' own merge
(``bpy.ops.cycles.merge_images``, two files a call) averages the parts weighted by their
samples; a compositor-only render of the merged EXR (the scene is not rendered again)
writes it in the job's output format, with the staged scene's colour management. The
staged scene is loaded, never saved. Prints ``BRAAS_MERGED {"file": ...}``; a failure is
``BRAAS_FATAL {"reason": ...}`` and exit code 1.
"""

import argparse
import json
import os
import shutil
import sys

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker")
sys.path.insert(0, WORKER)  # the worker's stdlib modules, as blender_render.py uses them
import blender_render  # noqa: E402
import bpy  # noqa: E402
import job_layout  # noqa: E402
from image_check import is_valid_image  # noqa: E402


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="merge_parts.py")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--frame", type=int, required=True)
    parser.add_argument("--part", dest="parts", action="append", required=True)
    blender_render.add_render_setting_args(parser)
    return parser.parse_args(argv)


def merged_exr(parts: list[str], folder: str) -> str:
    """The parts merged pairwise: merge(merge(p1, p2), p3), ... (every part has the same
    samples, which is what makes the chain an even average)."""
    current = parts[0]
    for number, part in enumerate(parts[1:], start=1):
        target = os.path.join(folder, f"merged-{number}.exr")
        bpy.ops.cycles.merge_images(input_filepath1=current, input_filepath2=part,
                                    output_filepath=target)
        if not os.path.isfile(target):
            raise RuntimeError(f"Cycles' merge wrote no file for {os.path.basename(part)}")
        current = target
    return current


def composite_only(scene, exr: str) -> None:
    """The scene's compositor shows only the merged image (its Combined pass)."""
    image = bpy.data.images.load(exr)
    if hasattr(scene, "compositing_node_group"):  # Blender 5: a compositor node group
        tree = bpy.data.node_groups.new("braas merged still", "CompositorNodeTree")
        node = tree.nodes.new("CompositorNodeImage")
        node.image = image  # before linking: its outputs appear with the image
        output = tree.nodes.new("NodeGroupOutput")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        tree.links.new(node.outputs["Combined"], output.inputs[0])
        scene.compositing_node_group = tree
    else:  # Blender 4.2-4.5: the scene's own node tree
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        node = tree.nodes.new("CompositorNodeImage")
        node.image = image
        composite = tree.nodes.new("CompositorNodeComposite")
        tree.links.new(node.outputs["Combined"], composite.inputs["Image"])
    scene.render.use_compositing = True


def main() -> int:
    args = parse_args()
    bpy.ops.wm.open_mainfile(filepath=args.scene, load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    blender_render.use_still_image_output(scene)
    reason = blender_render.apply_render_settings(scene, args)
    if reason:
        blender_render.report("FATAL", reason=reason)
        return 1
    scene.frame_set(args.frame)
    scene.render.use_file_extension = True
    folder = os.path.join(args.out, job_layout.partial_dir(os.getpid()))
    os.makedirs(folder, exist_ok=True)
    try:
        composite_only(scene, merged_exr(args.parts, folder))
        name = job_layout.frame_name(args.frame, scene.render.file_extension)
        scene.render.filepath = os.path.join(folder, name)
        bpy.ops.render.render(write_still=True)
        written = scene.render.filepath
        if not is_valid_image(written):
            raise RuntimeError(f"the merged still {name} was not written whole")
        final = os.path.join(args.out, name)
        os.replace(written, final)
    except (RuntimeError, OSError) as err:
        blender_render.report("FATAL", reason=str(err).strip().splitlines()[-1])
        return 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("BRAAS_MERGED " + json.dumps({"file": final}), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    shutil.rmtree(bpy.app.tempdir, ignore_errors=True)
    os._exit(code)
