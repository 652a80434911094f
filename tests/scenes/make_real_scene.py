"""Build real-world-shaped scenes with Blender (PyPI bpy), for tests/test_real_scenes.py.

    python make_real_scene.py -- KIND FOLDER

KIND:
- geometry_nodes: the default cube with a Geometry Nodes modifier (Set Position);
- library_image: shots/shot.blend links a material from libs/lib.blend, whose image
  lives beside the library (libs/tex/lib_blue.png), as studios lay projects out;
- missing_library: the same shot, its library deleted afterwards.
Tiny (64x48, 4 samples) Cycles scenes with a camera, saved with relative paths.
"""

import os
import shutil
import sys

import bpy


def tiny_cycles(scene) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.image_settings.file_format = "PNG"


def geometry_nodes(folder: str) -> None:
    bpy.ops.wm.read_factory_settings()
    cube = bpy.data.objects["Cube"]
    tree = bpy.data.node_groups.new("Lift", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    lift = tree.nodes.new("GeometryNodeSetPosition")
    lift.inputs["Offset"].default_value = (0.0, 0.0, 0.5)
    tree.links.new(group_in.outputs[0], lift.inputs["Geometry"])
    tree.links.new(lift.outputs["Geometry"], group_out.inputs[0])
    cube.modifiers.new("GeometryNodes", "NODES").node_group = tree
    tiny_cycles(bpy.context.scene)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, "scene.blend"))


def library_image(folder: str) -> None:
    libs = os.path.join(folder, "libs")
    os.makedirs(os.path.join(libs, "tex"), exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    image = bpy.data.images.new("lib_blue.png", 16, 16)
    image.pixels[:] = [0.05, 0.2, 1.0, 1.0] * 256
    image.filepath_raw = os.path.join(libs, "tex", "lib_blue.png")
    image.file_format = "PNG"
    image.save()
    material = bpy.data.materials.new("LibBlue")
    material.use_nodes = True
    texture = material.node_tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    bsdf = material.node_tree.nodes["Principled BSDF"]
    material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    material.use_fake_user = True
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(libs, "lib.blend"), relative_remap=True)

    bpy.ops.wm.read_factory_settings()
    with bpy.data.libraries.load(os.path.join(libs, "lib.blend"), link=True,
                                 relative=True) as (_, linked):
        linked.materials = ["LibBlue"]
    cube = bpy.data.objects["Cube"]
    cube.data.materials.clear()
    cube.data.materials.append(bpy.data.materials["LibBlue"])
    tiny_cycles(bpy.context.scene)
    shots = os.path.join(folder, "shots")
    os.makedirs(shots, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(shots, "shot.blend"), relative_remap=True)


def missing_library(folder: str) -> None:
    library_image(folder)
    shutil.rmtree(os.path.join(folder, "libs"))


if __name__ == "__main__":
    kind, folder = sys.argv[sys.argv.index("--") + 1 :]
    os.makedirs(folder, exist_ok=True)
    {"geometry_nodes": geometry_nodes, "library_image": library_image,
     "missing_library": missing_library}[kind](os.path.abspath(folder))
    sys.stdout.flush()
    os._exit(0)
