"""Build a scene whose camera and view layer choices show as colours, for
tests/test_overrides.py (Blender, PyPI bpy):

    python make_colour_scene.py -- OUT.blend [--link-blue-camera]

Two emitting planes far apart, a red one and a blue one, each filling the view of its own
camera: ``CamRed`` (the scene's camera) and ``CamBlue``. Two view layers: ``Main`` (enabled)
and ``Green`` (disabled, its material override a green emission). Tiny: 64x48, 4 samples,
frames 1-6, written as PNG; no denoising, so a colour is flat. With
``--link-blue-camera``, CamBlue lives in ``cameras.blend`` beside OUT (its collection
``BlueRig`` linked into the scene): a camera the .blend parser does not see, Blender does.
"""

import os
import sys

import bpy


def emission(name: str, colour: tuple) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if not material.use_nodes:  # Blender 5 materials always use nodes
        material.use_nodes = True
    nodes = material.node_tree.nodes
    light = nodes.new("ShaderNodeEmission")
    light.inputs["Color"].default_value = colour
    material.node_tree.links.new(light.outputs[0], nodes.get("Material Output").inputs[0])
    return material


def link_camera(scene, name: str, library: str) -> None:
    """Move camera ``name`` into a library file and link it back into the scene."""
    camera = bpy.data.objects[name]
    rig = bpy.data.collections.new("BlueRig")
    rig.objects.link(camera)
    bpy.data.libraries.write(library, {rig})
    bpy.data.objects.remove(camera)
    bpy.data.collections.remove(rig)
    with bpy.data.libraries.load(library, link=True, relative=True) as (_source, target):
        target.collections = ["BlueRig"]
    scene.collection.children.link(target.collections[0])


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1 :]
    out = args[0]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 beside the scene
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 6
    scene.render.image_settings.file_format = "PNG"
    for name, colour, x in (("CamRed", (1, 0, 0, 1), 0), ("CamBlue", (0, 0, 1, 1), 100)):
        bpy.ops.mesh.primitive_plane_add(size=20, location=(x, 0, 0))
        bpy.context.object.data.materials.append(emission(name + "Light", colour))
        camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        camera.location = (x, 0, 3)  # looking down -Z at its plane
        scene.collection.objects.link(camera)
    scene.camera = bpy.data.objects["CamRed"]
    scene.view_layers[0].name = "Main"
    green = scene.view_layers.new("Green")
    green.material_override = emission("GreenLight", (0, 1, 0, 1))
    green.use = False
    bpy.ops.wm.save_as_mainfile(filepath=out)  # first: the library's path is relative to it
    if "--link-blue-camera" in args:
        link_camera(scene, "CamBlue", os.path.join(os.path.dirname(out), "cameras.blend"))
        bpy.ops.wm.save_as_mainfile(filepath=out)


if __name__ == "__main__":
    main()
