"""Show a job's preview in Blender: its contact sheet and video loaded as images, the sheet
in an Image Editor of the open windows (or the render window, as F12 opens it)."""

from __future__ import annotations

import bpy


def show_preview(result: dict) -> str:
    """Load the contact sheet and the video of ``braas_globus.preview`` as images, show the
    sheet in an Image Editor (the video beside it, a movie image to pick in the editor);
    returns what to say."""
    sheet = _load_image(result["contact_sheet"])
    video = _load_image(result["video"]) if result.get("video") else None
    where = "in an Image Editor" if show_in_image_editor(sheet) else f"as image {sheet.name!r}"
    extra = f"; the video is image {video.name!r}" if video is not None else ""
    return f"preview of {result['job']}: contact sheet {where}{extra} ({result['contact_sheet']})"


def _load_image(path: str):
    """``path`` as a Blender image, read again if it was loaded before (a new preview)."""
    image = bpy.data.images.load(path, check_existing=True)
    image.reload()
    return image


def _image_editor(manager):
    return next((area for window in manager.windows for area in window.screen.areas
                 if area.type == "IMAGE_EDITOR"), None)


def show_in_image_editor(image) -> bool:
    """Show ``image`` in an Image Editor of the open windows, else in the render window as
    F12 opens it; False without a window (background mode)."""
    manager = bpy.context.window_manager
    if manager is None or not manager.windows:
        return False
    area = _image_editor(manager)
    if area is None:
        window = manager.windows[0]
        with bpy.context.temp_override(window=window, screen=window.screen):
            bpy.ops.render.view_show("INVOKE_DEFAULT")
        area = _image_editor(manager)
    if area is None:
        return False
    area.spaces.active.image = image
    return True
