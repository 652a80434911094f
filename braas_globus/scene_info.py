"""Read what a submit needs from a .blend without starting Blender (blender-asset-tracer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blender_asset_tracer import blendfile
from blender_asset_tracer.blendfile import exceptions as blend_exceptions
from blender_asset_tracer.blendfile import iterators

from .errors import UsageError


@dataclass(frozen=True)
class SceneInfo:
    name: str
    engine: str
    frame_start: int
    frame_end: int
    frame_step: int
    frame_current: int
    fps: int  # frames a second are fps / fps_base (29.97: 30000 / 1001)
    fps_base: float
    # What --camera and --view-layer may name: the file's own camera objects (a scene may
    # render with any of them; linked ones are not read here: Blender names those when it
    # stages the scene), the scene's view layers.
    cameras: tuple[str, ...] = ()
    view_layers: tuple[str, ...] = ()
    links_libraries: bool = False  # it links other .blend files (objects may come from them)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_scene_info(path: Path) -> SceneInfo:
    """The active scene's engine and frame range; UsageError if ``path`` is not a readable .blend."""
    try:
        bfile = blendfile.BlendFile(path)
    except (blend_exceptions.BlendFileError, OSError, EOFError, ValueError) as err:
        raise UsageError(f"{path} is not a readable .blend file ({err})") from err
    try:
        scene = _active_scene(bfile)

        def render(field: bytes) -> Any:  # a field of the scene's render settings
            return scene.get((b"r", field))

        return SceneInfo(
            name=_text(scene.id_name)[2:],
            engine=_text(render(b"engine")),
            frame_start=int(render(b"sfra")),
            frame_end=int(render(b"efra")),
            frame_step=int(render(b"frame_step")),
            frame_current=int(render(b"cfra")),
            fps=int(render(b"frs_sec")),
            fps_base=float(render(b"frs_sec_base")),
            cameras=_camera_names(bfile),
            view_layers=tuple(_text(layer[b"name"]) for layer in iterators.listbase(
                scene.get_pointer((b"view_layers", b"first")))),
            links_libraries=bool(bfile.find_blocks_from_code(b"LI")),
        )
    except (KeyError, IndexError, blend_exceptions.SegmentationFault, EOFError, ValueError) as err:
        raise UsageError(f"{path} is damaged: its scene settings cannot be read ({err})") from err
    finally:
        bfile.close()


OB_CAMERA = 11  # Object.type of a camera (DNA_object_types.h)


def _camera_names(bfile: blendfile.BlendFile) -> tuple[str, ...]:
    return tuple(sorted(_text(ob.id_name)[2:] for ob in bfile.find_blocks_from_code(b"OB")
                        if ob[b"type"] == OB_CAMERA))


def _active_scene(bfile: blendfile.BlendFile) -> blendfile.BlendFileBlock:
    globals_ = bfile.find_blocks_from_code(b"GLOB")
    if globals_:
        current = globals_[0].get_pointer(b"curscene")
        if current is not None:
            return current
    scenes = bfile.find_blocks_from_code(b"SC")
    if not scenes:
        raise KeyError("no scene")
    return scenes[0]
