"""Trace a scene and pack it, with its assets, into a content-addressed stage.

Validate, then write (as blender-asset-tracer does): ``PackPlan.strategise`` finds every
asset and every missing one, in a private staging folder, before a job exists;
``execute`` settles the stage. The user's .blend and its files are only read.

- blender-asset-tracer (BAT) parses the .blend and its libraries, copies them with
  their paths rewritten relative, folder structure kept (files outside the scene's
  folder go to ``_outside_project/``);
- then Blender, with the staged copy loaded, lists what it really uses
  (``blender_scripts/stage_scene.py``): what the parser missed is copied in, what is
  missing or cannot be staged is reported; in packed mode Blender packs every packable
  asset into the staged .blend, and only what cannot be packed stays beside it.

The manifest maps each staged file's relative path to its sha256 and size, so a
backend sends only what the other side lacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blender_asset_tracer import blendfile
from blender_asset_tracer.pack import Packer, progress

from .blender import run_blender_script
from .blender_scripts import STAGE_SCENE
from .disk import write_atomically
from .errors import RunError, UsageError
from .project import ProjectRules
from .spec import Mode
from .worker.scene_files import copy_in

log = logging.getLogger(__name__)


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


OnBytes = Callable[[int, int], None]  # (bytes copied, bytes in all)


class _Packer(Packer):
    """BAT's Packer, whose copying thread is stopped when packing fails: BAT starts it (a
    thread that is no daemon), then forgets it when a copy fails before the end, and the
    thread waits for more files forever, so the process could never exit."""

    transferer: threading.Thread | None = None

    def _create_file_transferer(self) -> Any:
        self.transferer = super()._create_file_transferer()
        count_moves_before_they_happen(self.transferer)
        return self.transferer

    def execute_or_stop(self) -> None:
        try:
            self.execute()
        except BaseException:
            transferer = self.transferer
            if transferer is not None and transferer.is_alive():
                transferer.abort_and_join()  # type: ignore[attr-defined]  # BAT's FileTransferer
            raise


def count_moves_before_they_happen(transferer: Any) -> None:
    """BAT's ``queue_move`` puts the move in its copying thread's queue and only then reads
    the file's size, which that thread may have moved away already: a FileNotFoundError
    for pack-info.txt, seen once under load (blender-asset-tracer 1.23). The size is read
    first here, and a file the thread has moved is counted as BAT meant to count it."""
    queue_move = transferer.queue_move

    def read_size_then_queue(src: Path, dst: Any) -> None:
        size = src.stat().st_size
        try:
            queue_move(src, dst)
        except FileNotFoundError:
            if src.exists():
                raise
            transferer.total_queued_bytes += size

    transferer.queue_move = read_size_then_queue


class _ByteProgress(progress.Callback):
    def __init__(self, on_bytes: OnBytes) -> None:
        self.on_bytes = on_bytes

    def transfer_progress(self, total_bytes: int, transferred_bytes: int) -> None:
        self.on_bytes(transferred_bytes, total_bytes)


@dataclass
class StageReport:
    """Blender's account of the staged scene (``stage_scene.py``'s record)."""

    blender_version: tuple[int, ...]
    file_version: tuple[int, ...]
    problems: list[str]  # what the Blender that staged it lacks for this scene
    copied: list[dict[str, Any]]  # files the parser missed, copied in: file, owner, staged
    missing: list[dict[str, Any]]  # file (where the user's scene looks for it), owner
    outside: list[dict[str, Any]]  # files used from outside the stage that could not be staged
    used: list[str]  # staged paths the scene still reads (packed mode: what stays beside)
    unbaked: list[dict[str, Any]] = field(default_factory=list)  # caches never baked
    # ``problems`` with denoising turned on and off ("on", "off"): a job's --denoise or
    # --no-denoise changes what this Blender must have. None in reports cached before it.
    problems_by_denoise: dict[str, list[str]] | None = None
    # The scene's own samples and denoising ({"samples": int, "denoise": bool}): what a
    # split still is checked against. None in reports cached before it.
    render: dict[str, Any] | None = None
    # The camera objects Blender sees, linked ones too (what --camera may name). None in
    # reports cached before it.
    cameras: list[str] | None = None

    def problems_with(self, denoise: bool | None) -> list[str]:
        """What this Blender lacks for the scene as the job renders it."""
        if denoise is None or self.problems_by_denoise is None:
            return self.problems
        return self.problems_by_denoise["on" if denoise else "off"]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StageReport":
        return cls(**{**data, "blender_version": tuple(data["blender_version"]),
                      "file_version": tuple(data["file_version"])})


@dataclass
class PackPlan:
    """What packing ``scene`` will do; call ``strategise`` then ``execute``."""

    scene: Path
    mode: Mode
    target: Path
    cache_dir: Path | None = None  # Blender's reports (and packed .blend files) by input
    rules: ProjectRules | None = None  # what may be staged (default: the scene's folder)
    missing: list[Path] = field(default_factory=list)
    report: StageReport | None = None
    _staged_blend: Path | None = None
    _project: Path | None = None  # BAT's project folder (the project root)
    _copies: dict[Path, Path] = field(default_factory=dict)  # user's file -> BAT's copy

    def strategise(self, blender: dict[str, Any], on_bytes: OnBytes | None = None) -> list[Path]:
        """Stage into ``target`` and have Blender check it; return the missing files.

        ``target`` is private staging: nothing of a job exists yet.
        """
        # BAT's own CLI turns strict pointers off: Blender 5.0 Geometry Nodes modifiers
        # hold pointers BAT 1.x cannot follow, and raising there would refuse the scene.
        blendfile.set_strict_pointer_mode(False)
        rules = self.rules or ProjectRules(self.scene, self.scene.parent)
        parser_missing = self._copy_with_bat(rules, on_bytes)
        self._keep_modes()
        (self.target / "pack-info.txt").unlink(missing_ok=True)  # BAT's note to humans
        self.report = self._stage_with_blender(blender)
        rules.check([Path(c["file"]) for c in self.report.copied])  # what BAT missed
        if self.report.outside:
            first = self.report.outside[0]
            raise UsageError(f"{first['owner']} uses {first['file']} by a path that cannot be "
                             f"staged ({len(self.report.outside)} file(s) in all): make the "
                             "path relative to the scene, or move the file beside it")
        # Blender's account wins: what the parser calls missing may be a cache folder that
        # a simulation writes when it runs (never baked), which Blender knows it is.
        unbaked = {Path(c["file"]) for c in self.report.unbaked}
        found = parser_missing - unbaked
        found.update(Path(m["file"]) for m in self.report.missing)
        self.missing = sorted(found)
        return self.missing

    def _copy_with_bat(self, rules: ProjectRules, on_bytes: OnBytes | None) -> set[Path]:
        """BAT's trace and copy into ``target``; the files BAT found missing.

        The project root is BAT's project: the stage keeps the layout below it. The Packer
        holds a temporary folder (tempfile's bat-*-batpack) until it is closed, and BAT keeps
        each .blend it parsed open (a compressed one decompressed into a temporary file) for
        the life of the process: both are closed as soon as BAT has copied, so that neither
        a refusal nor a kill later on (while Blender checks the stage, or the job is staged)
        leaves them behind, and the next submit in this process (the add-on's Blender)
        parses the files as they are then.
        """
        try:
            packer = _Packer(self.scene, rules.root, str(self.target))
            with packer:
                if on_bytes:
                    packer.progress_cb = _ByteProgress(on_bytes)
                self.target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                packer.strategise()
                rules.check([Path(source) for source in packer._actions])  # noqa: SLF001
                packer.execute_or_stop()
                self._staged_blend = Path(packer.output_path)
                self._project = Path(packer.project)
                self._copies = {Path(source): Path(action.new_path)
                                for source, action in packer._actions.items()  # noqa: SLF001
                                if action.new_path is not None}
                return {Path(p) for p in packer.missing_files}
        finally:
            blendfile.close_all_cached()

    def execute(self) -> Path:
        """Settle the stage; return the staged .blend's path relative to ``target``."""
        assert self._staged_blend is not None and self.report is not None, "strategise() first"
        if self.mode is Mode.PACKED:
            _drop_unreferenced(self.target, self._staged_blend, self.report.used)
        return self._staged_blend.relative_to(self.target)

    def _keep_modes(self) -> None:
        """BAT's copies get the default mode: give each its source's, so a private file
        stays private in the stage, the objects and the cache."""
        assert self._staged_blend is not None  # strategise() calls this
        for source, copy in [(self.scene, self._staged_blend), *self._copies.items()]:
            if copy.is_file() and source.exists():
                os.chmod(copy, stat.S_IMODE(source.stat().st_mode))

    def _folders(self) -> dict[str, str]:
        """Each staged folder -> the user's folder its files came from (BAT's layout)."""
        assert self._project is not None  # strategise() calls this
        folders = {str(self.target): str(self._project)}
        for source, copy in self._copies.items():  # BAT's plan
            folders[str(copy.parent)] = str(source.parent)
        return folders

    def _stage_with_blender(self, blender: dict[str, Any]) -> StageReport:
        """Run stage_scene.py, or reuse its result for exactly the same inputs.

        Blender does not write the same bytes twice for the same scene, so without the
        cache every submit of an unchanged scene would make (and send) a new packed .blend;
        and an unchanged scene need not start Blender again to be checked.
        """
        staged_blend = self._staged_blend
        assert staged_blend is not None  # strategise() calls this
        packed = self.mode is Mode.PACKED
        inputs = json.dumps([self.mode.value, staged_blend.relative_to(self.target)
                             .as_posix(), manifest_to_json(build_manifest(self.target)),
                             blender], sort_keys=True)
        key = hashlib.sha256(inputs.encode()).hexdigest()
        cache_dir = self.cache_dir
        record = cache_dir / f"{key}.json" if cache_dir else None
        blend = record.with_suffix(".blend") if record else None  # set exactly when record is
        if record and blend and record.exists() and (blend.exists() or not packed):
            report = json.loads(record.read_text(encoding="utf-8"))
            if "render" in report and _still_true(report):  # else: from before it
                for copy in report["copied"]:
                    copy_in(copy["file"], self.target / copy["staged"])  # as Blender did
                if packed:
                    shutil.copy(blend, staged_blend)
                return StageReport.from_json(report)
        folders_file = self.target.parent / f"{self.target.name}.folders.json"
        folders_file.write_text(json.dumps(self._folders()))
        try:
            report = _run_stage_scene(blender, [
                "--blend", str(staged_blend), "--stage", str(self.target),
                "--folders", str(folders_file), *(["--pack"] if packed else [])])
        finally:
            folders_file.unlink(missing_ok=True)
        if packed:  # Blender saved it anew, with the default mode
            os.chmod(staged_blend, stat.S_IMODE(self.scene.stat().st_mode))
        if cache_dir and record and blend:  # all three or none
            for copy in report.copied:
                path = Path(copy["file"])
                copy["sha256"] = sha256_file(path) if path.is_file() else None
            cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if packed:  # with the mode of the user's .blend, as the staged copy has it
                write_atomically(blend, lambda p: shutil.copy(staged_blend, p))

            def write_record(p: Path) -> None:
                p.write_text(json.dumps(report.__dict__))
                p.chmod(0o600)  # names the user's files

            write_atomically(record, write_record)
        return report

    def close(self) -> None:
        """Nothing is left to close (``strategise`` closes BAT's Packer itself): kept so that
        callers that close the plan need not change."""


def _run_stage_scene(blender: dict[str, Any], args: list[str]) -> StageReport:
    output = run_blender_script(blender, STAGE_SCENE, args)
    for line in output.splitlines():
        if line.startswith("BRAAS_STAGE "):
            return StageReport.from_json(json.loads(line.split(" ", 1)[1]))
    raise RunError("Blender did not report on the staged scene (stage_scene.py printed no "
                   "BRAAS_STAGE record)")


def _still_true(report: dict[str, Any]) -> bool:
    """Whether a cached report still holds for files outside the parser's stage: what
    Blender copied in is unchanged (a folder never counts as unchanged), and what was
    missing still is."""
    return all(c.get("sha256") and Path(c["file"]).is_file()
               and sha256_file(Path(c["file"])) == c["sha256"] for c in report["copied"]) \
        and not any(Path(m["file"]).exists() for m in report["missing"])


def _drop_unreferenced(stage: Path, blend: Path, used: list[str]) -> None:
    """After packing into the .blend, remove staged files that it no longer reads."""
    keep = {blend.resolve(), *((stage / p).resolve() for p in used)}
    for path in sorted(stage.rglob("*"), reverse=True):  # children before their folders
        if path.is_file() and path.resolve() not in keep and \
                not any(k in path.resolve().parents for k in keep):  # a cache folder's files
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


def manifest_to_json(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {path: {"sha256": e.sha256, "size": e.size} for path, e in manifest.items()}


def manifest_from_json(data: dict[str, dict[str, Any]]) -> Manifest:
    """A manifest as this machine wrote it (job/manifest.json)."""
    return {path: ManifestEntry(str(e["sha256"]), int(e["size"])) for path, e in data.items()}
