"""Trace a scene and pack it, with its assets, into a content-addressed stage.

Plan, then execute (as blender-asset-tracer does): ``PackPlan.strategise`` finds
every asset and every missing one before anything is written; ``execute`` writes
the stage. The user's .blend and its files are only read.

- directory mode: the .blend and its files, paths rewritten relative, folder
  structure kept (files outside the scene's folder go to ``_outside_project/``);
- packed mode: the same copy, then Blender packs every packable asset into the
  staged .blend, and only what cannot be packed (caches, sequences) stays beside it.

The manifest maps each staged file's relative path to its sha256 and size, so a
backend sends only what the other side lacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from blender_asset_tracer import trace
from blender_asset_tracer.pack import Packer, progress

from .blender import run_blender_script
from .blender_scripts import PACK_INTO_BLEND
from .errors import UsageError
from .spec import Mode

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ManifestEntry:
    sha256: str
    size: int


Manifest = dict[str, ManifestEntry]  # relative path (posix) -> content


class MissingAssetsError(UsageError):
    def __init__(self, scene: Path, missing: list[Path]) -> None:
        shown = ", ".join(_display(scene, p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        super().__init__(f"{len(missing)} missing asset(s) in {scene.name}: {shown}{more}; "
                         "fix the paths, or submit with --allow-missing")
        self.missing = missing


def _display(scene: Path, path: Path) -> str:
    try:
        return str(path.relative_to(scene.parent))
    except ValueError:
        return str(path)


class _ByteProgress(progress.Callback):
    def __init__(self, on_bytes) -> None:
        self.on_bytes = on_bytes

    def transfer_progress(self, total_bytes: int, transferred_bytes: int) -> None:
        self.on_bytes(transferred_bytes, total_bytes)


@dataclass
class PackPlan:
    """What packing ``scene`` will do; call ``strategise`` then ``execute``."""

    scene: Path
    mode: Mode
    target: Path
    cache_dir: Path | None = None  # packed .blend files by their exact inputs
    missing: list[Path] = field(default_factory=list)
    _packer: Packer | None = None

    def strategise(self) -> list[Path]:
        """Trace every asset; return the missing ones. Writes nothing."""
        self._packer = Packer(self.scene, self.scene.parent, str(self.target))
        self._packer.strategise()
        self.missing = sorted(self._packer.missing_files)
        return self.missing

    def execute(self, blender: dict, on_bytes=None) -> Path:
        """Write the stage; return the staged .blend's path relative to ``target``."""
        assert self._packer is not None, "strategise() first"
        if on_bytes:
            self._packer.progress_cb = _ByteProgress(on_bytes)
        try:
            self._packer.execute()
            staged_blend = Path(self._packer.output_path)
        finally:
            self._packer.close()
        (self.target / "pack-info.txt").unlink(missing_ok=True)  # BAT's note to humans
        if self.mode is Mode.PACKED:
            self._pack_into_blend(blender, staged_blend)
            _drop_unreferenced(self.target, staged_blend)
        return staged_blend.relative_to(self.target)

    def _pack_into_blend(self, blender: dict, staged_blend: Path) -> None:
        """Run Blender's packing, or reuse the result for exactly the same inputs.

        Blender does not write the same bytes twice for the same scene, so without this
        every submit of an unchanged scene would make (and send) a new packed .blend.
        """
        if self.cache_dir is None:
            run_blender_script(blender, PACK_INTO_BLEND, ["--blend", str(staged_blend)])
            return
        inputs = json.dumps([staged_blend.relative_to(self.target).as_posix(),
                             manifest_to_json(build_manifest(self.target)), blender],
                            sort_keys=True)
        cached = self.cache_dir / f"{hashlib.sha256(inputs.encode()).hexdigest()}.blend"
        if not cached.exists():
            run_blender_script(blender, PACK_INTO_BLEND, ["--blend", str(staged_blend)])
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial")
            shutil.copyfile(staged_blend, partial)
            os.replace(partial, cached)
        shutil.copyfile(cached, staged_blend)

    def close(self) -> None:
        if self._packer is not None:
            self._packer.close()


def _drop_unreferenced(stage: Path, blend: Path) -> None:
    """After packing into the .blend, remove staged files that it no longer points to."""
    keep = {blend.resolve()}
    for usage in trace.deps(blend):
        keep.update(p.resolve() for p in usage.files())
    for path in sorted(stage.rglob("*"), reverse=True):  # children before their folders
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(stage: Path) -> Manifest:
    manifest: Manifest = {}
    for root, _dirs, files in os.walk(stage):
        for name in files:
            path = Path(root, name)
            relative = path.relative_to(stage).as_posix()
            manifest[relative] = ManifestEntry(sha256_file(path), path.stat().st_size)
    return dict(sorted(manifest.items()))


def manifest_to_json(manifest: Manifest) -> dict:
    return {path: {"sha256": e.sha256, "size": e.size} for path, e in manifest.items()}
