"""Which files a scene may take along: those inside its project root.

A .blend names its files by any path it likes, so someone else's scene can name
``~/.ssh/id_rsa`` or the user's Globus tokens and have a submit send them to a centre.
A submit therefore stages only files inside the scene's project root: the folder the
user names, else the nearest folder above the .blend marked as a project (Blender's
``.blender_project`` or a ``.git``), else the .blend's own folder. Files outside it are
refused unless the user allows them; files in braas-globus's own folder, in hidden
folders and in system folders are never staged. Paths are judged with links followed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath

from .errors import UsageError

PROJECT_MARKERS = (".blender_project", ".git")
# What no scene needs and an attacker wants: accounts, keys, devices, the kernel's view.
SYSTEM_FOLDERS = ("/etc", "/proc", "/sys", "/dev", "/boot", "/run", "/var", "/usr", "/bin",
                  "/sbin", "/lib", "/lib32", "/lib64", "/private", "/System", "/Library",
                  "C:/Windows", "C:/Program Files", "C:/ProgramData")


def find_project_root(scene: Path, given: Path | None = None) -> Path:
    """``given`` (which must hold the scene), else the nearest marked folder, else the
    scene's folder."""
    scene = Path(os.path.realpath(scene))
    if given is not None:
        root = Path(os.path.realpath(given))
        if not within(scene, root):
            raise UsageError(f"--project-root {given}: {scene.name} is not inside it")
        return root
    for folder in scene.parents:
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return scene.parent


def within(path: PurePath, folder: PurePath) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class ProjectRules:
    """What a submit of ``scene`` may stage."""

    scene: Path
    root: Path
    home: Path | None = None  # BRAAS_HOME: tokens, presets, the job store
    allow_outside: bool = False

    def refusal(self, path: Path) -> str | None:
        """Why ``path`` may not be staged (``"outside"`` if only --allow-outside would
        let it), or None."""
        real = Path(os.path.realpath(path))
        if real == Path(os.path.realpath(self.scene)):
            return None
        home = Path(os.path.realpath(self.home)) if self.home is not None else None
        # BRAAS_HOME holds tokens and other jobs; only the demo scene's folder may travel.
        if home is not None and within(real, home) and not within(real, home / "demo"):
            return "in braas-globus's own folder (BRAAS_HOME, which holds your Globus tokens)"
        posix = PurePath(real.as_posix())
        for system in SYSTEM_FOLDERS:
            if within(posix, PurePath(system)):
                return f"in the system folder {system}"
        inside = within(real, self.root)
        below = real.relative_to(self.root).parts if inside else real.parts
        if any(part.startswith(".") for part in below):
            return "in a hidden folder or file"
        if not inside and not self.allow_outside:
            return "outside"
        return None

    def check(self, files: list[Path]) -> None:
        """UsageError naming what may not be staged; folders are judged file by file."""
        refused: dict[str, list[Path]] = {}
        for path in _files_below(files):
            reason = self.refusal(path)
            if reason:
                refused.setdefault(reason, []).append(path)
        never = [(reason, paths) for reason, paths in refused.items() if reason != "outside"]
        if never:
            reason, paths = never[0]
            count = sum(len(p) for _, p in never)
            raise UsageError(f"{self.scene.name} uses {_listed(paths)}, {reason}: braas-globus "
                             f"never sends such files ({count} in all); copy what the scene "
                             f"needs into its project folder {self.root}")
        if "outside" in refused:
            paths = refused["outside"]
            raise UsageError(f"{self.scene.name} uses {len(paths)} file(s) outside its project "
                             f"folder {self.root}: {_listed(paths)}; move them into the "
                             "project, give --project-root, or submit with --allow-outside")


def _files_below(paths: list[Path]) -> list[Path]:
    """Each path, and for a folder everything below it, links followed (as a copy
    follows them) but each real folder visited once."""
    found, seen, todo = [], set(), sorted(set(paths))
    while todo:
        path = todo.pop()
        found.append(path)
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in seen:
            seen.add(real)
            todo += [path / name for name in sorted(os.listdir(real))]
    return found


def _listed(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
