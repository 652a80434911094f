"""Every file the loaded scene uses, by Blender's own account. Runs inside Blender.

Blender is the authority on what a scene uses: a .blend parser guesses, Blender with the
scene loaded knows (``bpy.data.file_path_map(include_libraries=True)``, Blender 4.5 and
newer; before that, each file-holding ID type's ``filepath``). The client uses
this before sending a scene (``blender_scripts/trace_scene.py``) and the worker before
rendering one (``blender_render.py``): one rule on both sides.

Paths of a linked ID are relative to *its library's* folder, which
``bpy.path.abspath(path, library=...)`` follows.

``copy_in`` copies a file the parser missed into the stage, as ``stage_scene.py`` does in
Blender and as the client does again when it reuses Blender's account of a scene
(``pack.py``): one copy for both. Stdlib and bpy only; bpy is imported where it is used, so
the client, which has no bpy, can import ``copy_in``, ``exists`` and ``inside``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from typing import Any

# Tile and sequence patterns Blender expands itself.
_TILE_TOKENS = ("<UDIM>", "<UVTILE>")


def _library_of(idb: Any) -> Any:
    """The library that an ID's relative paths are relative to. A library's own path is
    relative to the open file, even for a library of a library: Blender rewrites it so on
    load (Library.filepath), however the parent library names it."""
    import bpy

    if isinstance(idb, bpy.types.Library):
        return None
    return idb.library


def _is_packed(idb: Any) -> bool:
    packed = getattr(idb, "packed_file", None)
    return bool(packed) or bool(getattr(idb, "packed_files", None))


def exists(path: str) -> bool:
    """Whether the file is there (for a UDIM path: at least one tile)."""
    if any(token in path for token in _TILE_TOKENS):
        pattern = path
        for token in _TILE_TOKENS:
            pattern = pattern.replace(token, "*")
        return bool(glob.glob(pattern))
    return os.path.exists(path)


_NUMBERED = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\.[^.]*)?$")


def _sequence(idb: Any, path: str) -> list[str]:
    """Every file of an image or volume sequence: Blender names only its first one."""
    if getattr(idb, "source", "") != "SEQUENCE" and not getattr(idb, "is_sequence", False):
        return [path]
    folder, name = os.path.split(path)
    match = _NUMBERED.match(name)
    if match is None or not os.path.isdir(folder):
        return [path]
    same = re.compile(re.escape(match["head"]) + r"\d+" + re.escape(match["tail"] or "") + "$")
    return sorted({path, *(os.path.join(folder, n) for n in os.listdir(folder) if same.match(n))})


# Before Blender 4.5 there is no file_path_map: the ID types whose ``filepath`` a render
# reads, and the modifier settings that hold caches, read one by one instead.
_FILE_IDS = ("libraries", "images", "movieclips", "sounds", "fonts", "volumes", "cache_files")


def _path_map() -> dict[Any, set[str]]:
    """Each ID that names files -> the paths it names, as the scene writes them."""
    import bpy

    if hasattr(bpy.data, "file_path_map"):
        found: dict[Any, set[str]] = bpy.data.file_path_map(include_libraries=True)
        return found
    found = {}
    for collection in _FILE_IDS:
        for idb in getattr(bpy.data, collection):
            found.setdefault(idb, set()).add(idb.filepath)
    for obj in bpy.data.objects:
        for modifier in obj.modifiers:
            if modifier.type == "FLUID" and modifier.fluid_type == "DOMAIN":
                found.setdefault(obj, set()).add(modifier.domain_settings.cache_directory)
            elif modifier.type == "OCEAN" and modifier.use_foam:
                found.setdefault(obj, set()).add(modifier.filepath)
    return found


def used_files() -> list[dict[str, Any]]:
    """One entry per (ID, file): ``path`` (absolute, normalised), ``owner``, ``kind``,
    ``exists``, ``cache`` (a simulation or modifier cache: absent means not baked) and
    ``relative`` (the scene names it by a ``//`` path)."""
    import bpy

    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for idb, paths in _path_map().items():
        if _is_packed(idb) or getattr(idb, "source", "") in ("GENERATED", "VIEWER"):
            continue
        library = _library_of(idb)
        for raw in paths:
            if not raw or raw == "<builtin>":
                continue
            if idb.library is not None and raw == idb.library.filepath:
                continue  # the link itself, listed under bpy.data.libraries
            kind = type(idb).__name__
            first = os.path.normpath(bpy.path.abspath(raw, library=library))
            for path in _sequence(idb, first):
                entries[(repr(idb), path)] = {
                    "path": path, "owner": _owner(idb), "kind": kind, "exists": exists(path),
                    "cache": kind == "Object",  # fluid, ocean, point caches live on objects
                    "relative": raw.startswith("//"),
                }
    return sorted(entries.values(), key=lambda e: (e["path"], e["owner"]))


def _owner(idb: Any) -> str:
    name = f"{type(idb).__name__} {idb.name!r}"
    if idb.library is not None:
        return f"{name} (from {os.path.basename(idb.library.filepath)})"
    return name


def inside(path: str, root: str) -> bool:
    """Whether ``path`` (resolved, with links followed) lies inside ``root``."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def copy_in(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy a file (or a folder: a cache) to ``target`` in the stage, folders made."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)  # keeps the owner-only mode a private file has
