"""Merge a still's parts (rendered by sample subsets, ``--split``) into the still.

    python merge_parts.py -- --scene IN.blend --out OUT --frame F --part P1 --part P2 ...
                             [the job's render settings, as blender_render.py takes them]

Run by ``braas_globus.merge`` after every part is in. Cycles' own merge
(``bpy.ops.cycles.merge_images``, two files a call) averages the parts weighted by their
samples; a compositor-only render of the merged EXR (the scene is not rendered again)
writes it in the job's output format, with the staged scene's colour management. The
staged scene is loaded, never saved. Prints ``BRAAS_MERGED {"file": ...}``; a failure is
``BRAAS_FATAL {"reason": ...}`` and exit code 1.

When the job denoises (its --denoise, else the scene's own), the still is denoised once,
after the merge, by the compositor's Denoise node (OpenImageDenoise) with the scene's
denoiser settings: its input passes, prefilter and quality. Cycles' merge keeps only the
Combined pass of Blender 5's multipart EXR, so the parts' Denoising Albedo and Normal
(blender_render.use_split_part stores them) are averaged in the compositor, as Cycles
accumulates them in one render: the still equals one render with all the samples that
Cycles denoised (measured: 4e-6 at most per pixel, tests/test_split_still.py). A Blender
built without OpenImageDenoise fails the merge; it never skips the denoise.
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
import preflight  # noqa: E402
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


#: The scene's Cycles denoiser settings as the compositor's Denoise node takes them.
PREFILTER = {"NONE": "None", "FAST": "Fast", "ACCURATE": "Accurate"}
QUALITY = {"HIGH": "High", "BALANCED": "Balanced", "FAST": "Fast"}
DENOISING_PASSES = ("Denoising Albedo", "Denoising Normal")


def new_tree(scene):
    """An empty compositor for the scene, and the socket its result goes to."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5: a compositor node group
        tree = bpy.data.node_groups.new("braas merged still", "CompositorNodeTree")
        output = tree.nodes.new("NodeGroupOutput")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        result = output.inputs[0]
    else:  # Blender 4.2-4.5: the scene's own node tree
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        result = tree.nodes.new("CompositorNodeComposite").inputs["Image"]
    scene.render.use_compositing = True
    return tree, result


def image_node(tree, path: str):
    node = tree.nodes.new("CompositorNodeImage")
    node.image = bpy.data.images.load(path, check_existing=False)  # its outputs appear
    return node


def composite_only(scene, exr: str) -> None:
    """The scene's compositor shows only the merged image (its Combined pass)."""
    tree, result = new_tree(scene)
    tree.links.new(image_node(tree, exr).outputs["Combined"], result)


def denoise_settings(scene) -> dict:
    """The scene's Cycles denoiser settings, as the merge's Denoise node applies them."""
    cycles = scene.cycles
    inputs = cycles.denoising_input_passes  # RGB, RGB_ALBEDO, RGB_ALBEDO_NORMAL
    return {"albedo": "ALBEDO" in inputs, "normal": "NORMAL" in inputs,
            "prefilter": PREFILTER.get(cycles.denoising_prefilter, "Accurate"),
            "quality": QUALITY.get(getattr(cycles, "denoising_quality", "HIGH"), "High")}


def set_option(node, socket: str, prop: str, value, enum_value) -> None:
    """A Denoise node option: an input socket in Blender 5, a property before."""
    if socket in node.inputs:
        node.inputs[socket].default_value = value
    elif hasattr(node, prop):
        setattr(node, prop, enum_value)


def average(tree, nodes: list, name: str):
    """The mean of the parts' pass ``name`` (every part has the same samples)."""
    total = nodes[0].outputs[name]
    for node in nodes[1:]:
        add = tree.nodes.new("ShaderNodeVectorMath")
        add.operation = "ADD"
        tree.links.new(total, add.inputs[0])
        tree.links.new(node.outputs[name], add.inputs[1])
        total = add.outputs[0]
    scale = tree.nodes.new("ShaderNodeVectorMath")
    scale.operation = "SCALE"
    tree.links.new(total, scale.inputs[0])
    scale.inputs["Scale"].default_value = 1.0 / len(nodes)
    return scale.outputs[0]


def composite_still(scene, exr: str, parts: list[str]) -> tuple[bool, str]:
    """The scene's compositor shows the merged image, denoised once where the job denoises
    (its --denoise, else the scene's own) and so does the view layer merged (Cycles' own
    per-layer switch): whether it denoises, and what it does, in words."""
    if not scene.cycles.use_denoising:
        composite_only(scene, exr)
        return False, "not denoised (the job does not denoise)"
    tree, result = new_tree(scene)
    merged = image_node(tree, exr)
    layer = scene.view_layers.get(getattr(merged, "layer", ""))
    if layer is not None and not layer.cycles.use_denoising:
        tree.links.new(merged.outputs["Combined"], result)
        return False, f"not denoised (view layer {layer.name!r} does not denoise)"
    if not preflight.has_openimagedenoise():
        raise RuntimeError(f"this Blender ({bpy.app.version_string}) was built without "
                           "OpenImageDenoise: it cannot denoise the merged still (merge with "
                           "a Blender that has it, or submit with --no-denoise)")
    settings = denoise_settings(scene)
    denoise = tree.nodes.new("CompositorNodeDenoise")
    tree.links.new(merged.outputs["Combined"], denoise.inputs["Image"])
    wanted = [name for name, use in zip(DENOISING_PASSES, (settings["albedo"],
                                                           settings["normal"])) if use]
    if wanted:
        nodes = [image_node(tree, part) for part in parts]
        for path, node in zip(parts, nodes):
            missing = [name for name in wanted if name not in node.outputs]
            if missing:
                raise RuntimeError(f"{os.path.basename(path)} has no {missing[0]} pass: "
                                   "its part was not rendered for a denoised still (render "
                                   "the parts again, or submit with --no-denoise)")
        for name in wanted:
            tree.links.new(average(tree, nodes, name), denoise.inputs[name.split()[-1]])
    set_option(denoise, "HDR", "use_hdr", True, True)
    set_option(denoise, "Prefilter", "prefilter", settings["prefilter"],
               settings["prefilter"].upper())
    set_option(denoise, "Quality", "quality", settings["quality"], settings["quality"].upper())
    tree.links.new(denoise.outputs["Image"], result)
    used = (" and ".join(name.split()[-1].lower() for name in wanted) + " passes" if wanted
            else "the colour alone")
    said = (f"denoised once after the merge: OpenImageDenoise, {used}, prefilter "
            f"{settings['prefilter']}, quality {settings['quality']}")
    if scene.cycles.denoiser != "OPENIMAGEDENOISE":
        said += f" (the scene's denoiser is {scene.cycles.denoiser})"
    return True, said


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
        denoised, said = composite_still(scene, merged_exr(args.parts, folder), args.parts)
        print(f"braas: {said}", flush=True)
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
    print("BRAAS_MERGED " + json.dumps({"file": final, "denoised": denoised}), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    shutil.rmtree(bpy.app.tempdir, ignore_errors=True)
    os._exit(code)
