"""Build real-world-shaped scenes with Blender (PyPI bpy), for tests/test_real_scenes.py.

    python make_real_scene.py -- KIND FOLDER

KIND:
- geometry_nodes: the default cube with a Geometry Nodes modifier (Set Position);
- library_image: shots/shot.blend links a material from libs/lib.blend, whose image
  lives beside the library (libs/tex/lib_blue.png), as studios lay projects out;
- missing_library: the same shot, its library deleted afterwards;
- double_library: shots/shot.blend links an object from libs/props.blend, whose material
  is linked from libs/materials/lib.blend, whose image is libs/materials/tex/lib_blue.png;
- udim: a UDIM image (two tiles, textures/udim/tile.<UDIM>.png);
- image_sequence: an image sequence (textures/seq/s_0001.png ...), one file per frame;
- movie_clip: a movie (footage/clip.mkv, made here by Blender's FFmpeg) as a texture;
- alembic: the cube read from caches/cube.abc through a Mesh Sequence Cache;
- fluid: a smoke simulation, not baked (its cache folder cache_fluid/ does not exist);
- vdb: a Volume object reading volumes/sphere.vdb (written beforehand by make_vdb.py);
- font: a text object in a font file beside the scene (fonts/Inter.woff2);
- sound: a sound strip (sounds/tone.wav): nothing to see, but it travels;
- non_ascii_absolute: a texture under "texturés é/", named by its absolute path;
- compressed: the geometry_nodes scene saved compressed;
- named_textures: the cube with one image per line of FOLDER/paths.txt, each named by
  that line as written (absolute, ``//../``, through a link): what a hostile scene names.
The library kinds mark their top folder as a Blender project (``.blender_project/``).
Tiny (64x48, 4 samples) Cycles scenes with a camera, saved with relative paths (but the
one that tests absolute paths).
"""

import os
import shutil
import struct
import sys
import wave

import bpy


def tiny_cycles(scene) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.image_settings.file_format = "PNG"


def image_material(name: str, image):
    """A material whose base colour is ``image``; returns it and its image node."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    texture = material.node_tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    bsdf = material.node_tree.nodes["Principled BSDF"]
    material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material, texture


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
    os.makedirs(os.path.join(folder, ".blender_project"), exist_ok=True)
    libs = os.path.join(folder, "libs")
    os.makedirs(os.path.join(libs, "tex"), exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    image = bpy.data.images.new("lib_blue.png", 16, 16)
    image.pixels[:] = [0.05, 0.2, 1.0, 1.0] * 256
    image.filepath_raw = os.path.join(libs, "tex", "lib_blue.png")
    image.file_format = "PNG"
    image.save()
    material, _ = image_material("LibBlue", image)
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


def png(path: str, rgba) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = bpy.data.images.new(os.path.basename(path), 16, 16)
    image.pixels[:] = list(rgba) * 256
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def textured_cube(image):
    """The factory cube, its material showing ``image``; returns the image node."""
    material, texture = image_material("Shown", image)
    mesh = bpy.data.objects["Cube"].data
    mesh.materials.clear()
    mesh.materials.append(material)
    return texture


def save(folder: str, name: str = "scene.blend", **options) -> None:
    tiny_cycles(bpy.context.scene)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, name), relative_remap=True,
                                **options)


def double_library(folder: str) -> None:
    os.makedirs(os.path.join(folder, ".blender_project"), exist_ok=True)
    materials = os.path.join(folder, "libs", "materials")
    library_image(materials)  # materials/libs/lib.blend ... reused layout, then moved
    os.replace(os.path.join(materials, "libs", "lib.blend"), os.path.join(materials, "lib.blend"))
    shutil.move(os.path.join(materials, "libs", "tex"), os.path.join(materials, "tex"))
    shutil.rmtree(os.path.join(materials, "libs"))
    shutil.rmtree(os.path.join(materials, "shots"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with bpy.data.libraries.load(os.path.join(materials, "lib.blend"), link=True,
                                 relative=True) as (_, linked):
        linked.materials = ["LibBlue"]
    bpy.ops.mesh.primitive_cube_add()
    prop = bpy.context.active_object
    prop.name = "Prop"
    prop.data.materials.append(bpy.data.materials["LibBlue"])
    prop.use_fake_user = True
    bpy.context.scene.collection.objects.unlink(prop)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, "libs", "props.blend"),
                                relative_remap=True)
    bpy.ops.wm.read_factory_settings()
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    with bpy.data.libraries.load(os.path.join(folder, "libs", "props.blend"), link=True,
                                 relative=True) as (_, linked):
        linked.objects = ["Prop"]
    bpy.context.scene.collection.objects.link(bpy.data.objects["Prop"])
    os.makedirs(os.path.join(folder, "shots"), exist_ok=True)
    save(folder, os.path.join("shots", "shot.blend"))


def udim(folder: str) -> None:
    for tile, colour in ((1001, (1, 0.2, 0.1, 1)), (1002, (0.1, 1, 0.2, 1))):
        png(os.path.join(folder, "textures", "udim", f"tile.{tile}.png"), colour)
    bpy.ops.wm.read_factory_settings()
    image = bpy.data.images.load(os.path.join(folder, "textures", "udim", "tile.1001.png"))
    image.source = "TILED"
    textured_cube(image)
    save(folder)


def image_sequence(folder: str) -> None:
    colours = ((1, 0, 0, 1), (0, 1, 0, 1), (0, 0, 1, 1))
    for number, colour in enumerate(colours, start=1):
        png(os.path.join(folder, "textures", "seq", f"s_{number:04d}.png"), colour)
    bpy.ops.wm.read_factory_settings()
    image = bpy.data.images.load(os.path.join(folder, "textures", "seq", "s_0001.png"))
    image.source = "SEQUENCE"
    texture = textured_cube(image)
    texture.image_user.frame_duration = 3
    texture.image_user.use_auto_refresh = True
    save(folder)


def movie_clip(folder: str) -> None:
    bpy.ops.wm.read_factory_settings()
    scene = bpy.context.scene
    tiny_cycles(scene)
    scene.frame_end = 3
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0 splits media type from format
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    scene.render.ffmpeg.format = "MKV"
    scene.render.ffmpeg.codec = "FFV1"
    os.makedirs(os.path.join(folder, "footage"), exist_ok=True)
    scene.render.filepath = os.path.join(folder, "footage", "clip")
    scene.render.use_file_extension = False
    bpy.ops.render.render(animation=True)
    clip = os.path.join(folder, "footage", "clip.mkv")
    os.replace(scene.render.frame_path(frame=1), clip)
    bpy.ops.wm.read_factory_settings()
    image = bpy.data.images.load(clip)
    image.source = "MOVIE"
    texture = textured_cube(image)
    texture.image_user.frame_duration = 3
    save(folder)


def alembic(folder: str) -> None:
    bpy.ops.wm.read_factory_settings()
    os.makedirs(os.path.join(folder, "caches"), exist_ok=True)
    cache = os.path.join(folder, "caches", "cube.abc")
    bpy.ops.wm.alembic_export(filepath=cache, selected=False, start=1, end=1)
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    bpy.ops.wm.alembic_import(filepath=cache, always_add_cache_reader=True)
    bpy.data.cache_files[0].filepath = "//caches/cube.abc"
    save(folder)


def fluid(folder: str) -> None:
    """A smoke domain and its flow, cache in //cache_fluid, not baked (PyPI bpy's mantaflow
    cannot bake: its Python fails with "'LevelsetGrid' object has no attribute 'setConst'")."""
    bpy.ops.wm.read_factory_settings()
    domain = bpy.data.objects["Cube"].modifiers.new("Fluid", "FLUID")
    domain.fluid_type = "DOMAIN"
    domain.domain_settings.domain_type = "GAS"
    domain.domain_settings.resolution_max = 8
    domain.domain_settings.cache_directory = "//cache_fluid"
    bpy.ops.mesh.primitive_ico_sphere_add(radius=0.3, location=(0, 0, -0.5))
    flow = bpy.context.active_object.modifiers.new("Fluid", "FLUID")
    flow.fluid_type = "FLOW"
    flow.flow_settings.flow_type = "SMOKE"
    save(folder)


def vdb(folder: str) -> None:
    bpy.ops.wm.read_factory_settings()
    volume = bpy.data.volumes.new("Sphere")
    volume.filepath = os.path.join(folder, "volumes", "sphere.vdb")
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("Sphere", volume))
    save(folder)


def font(folder: str) -> None:
    source = os.path.join(bpy.utils.system_resource("DATAFILES", path="fonts"), "Inter.woff2")
    os.makedirs(os.path.join(folder, "fonts"), exist_ok=True)
    shutil.copy(source, os.path.join(folder, "fonts", "Inter.woff2"))
    bpy.ops.wm.read_factory_settings()
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    curve = bpy.data.curves.new("Title", "FONT")
    curve.body = "BRaaS"
    curve.font = bpy.data.fonts.load(os.path.join(folder, "fonts", "Inter.woff2"))
    curve.extrude = 0.1
    text = bpy.data.objects.new("Title", curve)
    text.location = (-1.5, 0, 0)
    bpy.context.scene.collection.objects.link(text)
    save(folder)


def sound(folder: str) -> None:
    os.makedirs(os.path.join(folder, "sounds"), exist_ok=True)
    path = os.path.join(folder, "sounds", "tone.wav")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(struct.pack("<h", (i % 40 - 20) * 800) for i in range(8000)))
    bpy.ops.wm.read_factory_settings()
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.0 name
    strips.new_sound("tone", path, 1, 1)
    save(folder)


def non_ascii_absolute(folder: str) -> None:
    path = os.path.join(folder, "texturés é", "bleu.png")
    png(path, (0.1, 0.3, 1, 1))
    bpy.ops.wm.read_factory_settings()
    image = bpy.data.images.load(path)
    textured_cube(image)
    tiny_cycles(bpy.context.scene)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, "scene.blend"),
                                relative_remap=False)
    image.filepath = path  # absolute, as a scene made on another machine would name it
    bpy.ops.wm.save_mainfile(relative_remap=False)


def compressed(folder: str) -> None:
    geometry_nodes(folder)
    bpy.ops.wm.save_mainfile(compress=True)


def named_textures(folder: str) -> None:
    bpy.ops.wm.read_factory_settings()
    with open(os.path.join(folder, "paths.txt"), encoding="utf-8") as stream:
        paths = [line.rstrip("\n") for line in stream if line.strip()]
    mesh = bpy.data.objects["Cube"].data
    mesh.materials.clear()
    for number, path in enumerate(paths):
        image = bpy.data.images.new(f"named{number}", 4, 4)
        image.source = "FILE"
        image.filepath = path  # as written: Blender need not be able to read it
        material, _ = image_material(f"Named{number}", image)
        mesh.materials.append(material)
    tiny_cycles(bpy.context.scene)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, "scene.blend"),
                                relative_remap=False)


KINDS = {name: function for name, function in globals().items()
         if callable(function) and getattr(function, "__module__", "") == "__main__"
         and name not in ("tiny_cycles", "png", "textured_cube", "image_material", "save")}


if __name__ == "__main__":
    kind, folder = sys.argv[sys.argv.index("--") + 1 :]
    os.makedirs(folder, exist_ok=True)
    KINDS[kind](os.path.abspath(folder))
    sys.stdout.flush()
    os._exit(0)
