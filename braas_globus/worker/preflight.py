"""Whether this Blender can render the loaded scene as it asks. Runs inside Blender.

Checked before the first frame, on the worker (``blender_render.py``) and, for a job
that renders on this machine, at submit (``blender_scripts/trace_scene.py``): a scene
that asks for what this Blender lacks fails with that reason instead of rendering blank
or wrong frames. Stdlib and bpy only; the version rules need no bpy (the client uses them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def version_text(version: Iterable[int]) -> str:
    return ".".join(str(part) for part in tuple(version)[:2])


def file_is_newer(file_version: Iterable[int], blender_version: Iterable[int]) -> bool:
    """A file saved by a newer Blender (major.minor) than the one that would render it."""
    return tuple(file_version)[:2] > tuple(blender_version)[:2]


def has_openimagedenoise() -> bool:
    try:
        import _cycles
    except ImportError:
        return False
    return bool(getattr(_cycles, "with_openimagedenoise", False))


def _compositor_denoises(scene: Any) -> bool:  # a bpy Scene
    tree = getattr(scene, "compositing_node_group", None)  # Blender 5.0
    if tree is None and getattr(scene, "use_nodes", False):
        tree = getattr(scene, "node_tree", None)  # before 5.0
    return tree is not None and any(node.bl_idname == "CompositorNodeDenoise"
                                    for node in tree.nodes)


#: The one render engine braas-globus renders with (its worker and the submit's check).
RENDER_ENGINE = "CYCLES"


def problems(scene: Any, denoise: bool | None = None) -> list[str]:  # a bpy Scene
    """What keeps this Blender from rendering ``scene`` right, one sentence each; with
    ``denoise``, as it renders with the job's --denoise/--no-denoise over the scene's own."""
    import bpy

    found: list[str] = []
    if scene.render.engine != RENDER_ENGINE:
        found.append(f"the scene renders with {scene.render.engine}; braas-globus renders "
                     "Cycles scenes only")
        return found
    if not has_openimagedenoise():
        # Without OpenImageDenoise Blender lists no such denoiser: the setting reads ''.
        denoises = scene.cycles.use_denoising if denoise is None else denoise
        if denoises and scene.cycles.denoiser != "OPTIX":
            found.append(f"the scene denoises with OpenImageDenoise, which this Blender "
                         f"({bpy.app.version_string}) was built without: turn denoising off "
                         "or render with a Blender that has it")
        elif _compositor_denoises(scene):
            found.append(f"the scene's compositor has a Denoise node, and this Blender "
                         f"({bpy.app.version_string}) was built without OpenImageDenoise")
    return found
