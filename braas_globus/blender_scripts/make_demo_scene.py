"""Build the demo scene: an orbiting camera around textured objects, rendered with Cycles.

    python make_demo_scene.py -- --out DIR/demo.blend [--frames 24] [--width 160] ...

The image textures are made here and saved beside the .blend in nested folders,
so the scene exercises asset tracing and packing. ``--missing-texture`` also links
an image that does not exist (for tests of missing-asset reports).
"""

import argparse
import math
import os
import sys

import bpy


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="make_demo_scene.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=90)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--engine", default="CYCLES")
    parser.add_argument("--subdivisions", type=int, default=1,
                        help="subdivision levels of the monkey: more static geometry to sync")
    parser.add_argument("--missing-texture", action="store_true")
    parser.add_argument("--denoise", action="store_true", help="OpenImageDenoise on (tests)")
    parser.add_argument("--no-adaptive-sampling", action="store_true",
                        help="every pixel renders all the samples (tests of a split still)")
    return parser.parse_args(argv)


def textured_material(name: str, image) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if not material.use_nodes:  # Blender 5 materials always use nodes; older ones need this
        material.use_nodes = True
    nodes = material.node_tree.nodes
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    bsdf = nodes.get("Principled BSDF")
    material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def saved_image(name: str, relpath: str, folder: str, kind: str):
    path = os.path.join(folder, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = bpy.data.images.new(name, 64, 64)
    image.generated_type = kind
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    image.filepath = "//" + relpath  # relative, as an artist's project would have it
    return image


def main() -> None:
    args = parse_args()
    out = os.path.abspath(args.out)
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = args.engine
    if args.engine == "CYCLES":
        scene.cycles.samples = args.samples
        scene.cycles.use_denoising = args.denoise
        scene.cycles.use_adaptive_sampling = not args.no_adaptive_sampling
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.render.resolution_x = args.width
    scene.render.resolution_y = args.height
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, args.frames
    scene.render.image_settings.file_format = "PNG"

    grid = saved_image("grid", "textures/ground/grid.png", folder, "COLOR_GRID")
    checker = saved_image("checker", "textures/props/wood/checker.png", folder, "UV_GRID")

    bpy.ops.mesh.primitive_plane_add(size=8)
    bpy.context.object.data.materials.append(textured_material("Ground", grid))
    bpy.ops.mesh.primitive_monkey_add(location=(0, 0, 1))
    bpy.ops.object.shade_smooth()
    if args.subdivisions > 0:
        modifier = bpy.context.object.modifiers.new("Subdivision", "SUBSURF")
        modifier.levels = modifier.render_levels = args.subdivisions
    bpy.context.object.data.materials.append(textured_material("Monkey", checker))
    if args.missing_texture:
        bpy.ops.mesh.primitive_cube_add(size=0.5, location=(2, 0, 0.25))
        missing = bpy.data.images.new("missing", 8, 8)
        missing.source = "FILE"
        missing.filepath = "//textures/missing/not_there.png"
        bpy.context.object.data.materials.append(textured_material("Missing", missing))

    bpy.ops.object.light_add(type="SUN", location=(0, 0, 5))
    bpy.context.object.data.energy = 3.0
    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.06, 0.08)
    scene.world = world

    bpy.ops.object.camera_add()
    camera = bpy.context.object
    scene.camera = camera
    target = bpy.data.objects.new("Target", None)
    target.location = (0, 0, 1)
    scene.collection.objects.link(target)
    constraint = camera.constraints.new("TRACK_TO")
    constraint.target = target
    for frame in range(1, args.frames + 1):  # one orbit over the animation
        angle = 2 * math.pi * (frame - 1) / max(args.frames, 1)
        camera.location = (6 * math.cos(angle), 6 * math.sin(angle), 3)
        camera.keyframe_insert("location", frame=frame)

    bpy.ops.wm.save_as_mainfile(filepath=out, relative_remap=True)
    print(f"braas: demo scene saved to {out}")


if __name__ == "__main__":
    main()
