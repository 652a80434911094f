"""Put a packed stage where the workers read it.

This machine keeps one copy of each staged file's content in ``objects/`` (named by
sha256), so re-submitting an unchanged scene writes no asset bytes. Each backend's
``stage`` (the dispatch package's ``Stager``) then makes the job's ``in/`` tree appear
where its tasks run: the local backend hard-links the objects into the job folder; the
Globus backend sends the objects the centre lacks, and the job's first task there builds
``in/`` the same way (worker/render_task.link_inputs).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .disk import DiskFullError, disk_full_message, is_disk_full_error, write_atomically
from .pack import Manifest
from .worker import job_layout


class LocalStager:
    """This machine's copy of every staged file: content-addressed objects, hard-linked
    into each job that renders here. Every job keeps its stage here first (a centre's
    objects are sent from here); a backend's ``stage`` then puts it where its tasks read it."""

    def __init__(self, objects_dir: Path) -> None:
        self.objects_dir = objects_dir

    def object_path(self, sha256: str) -> Path:
        return self.objects_dir / job_layout.object_name(sha256)

    def stage(self, stage: Path, manifest: Manifest, job_folder: Path) -> int:
        """Keep the stage and make ``job_folder/in`` hold it; return the bytes copied."""
        copied = self.keep(stage, manifest)
        self.link(manifest, job_folder)
        return copied

    def keep(self, stage: Path, manifest: Manifest) -> int:
        """Store each file of the stage the objects lack; return the bytes copied."""
        copied = 0
        for relative, entry in manifest.items():
            source = stage / relative
            stored = self.object_path(entry.sha256)
            # Read-only (jobs share it), and no more readable than its source: a private
            # texture stays private. The same content from a more private file tightens it.
            mode = stat.S_IMODE(source.stat().st_mode) & 0o444
            with _disk_full_named(self.objects_dir, relative, entry.size):
                if not stored.exists():
                    for folder in (self.objects_dir, stored.parent):
                        folder.mkdir(mode=0o700, parents=True, exist_ok=True)

                    def copy_private(partial: Path) -> None:
                        shutil.copyfile(source, partial)
                        os.chmod(partial, mode)

                    write_atomically(stored, copy_private)
                    copied += entry.size
                elif stat.S_IMODE(stored.stat().st_mode) & ~mode:
                    os.chmod(stored, stat.S_IMODE(stored.stat().st_mode) & mode)
        return copied

    def link(self, manifest: Manifest, job_folder: Path) -> None:
        """Lay out ``job_folder/in`` from the kept objects, as the manifest names them."""
        target = job_folder / job_layout.IN
        if target.exists():
            shutil.rmtree(target)  # a resumed configuration starts from a clean in/
        for relative, entry in manifest.items():
            destination = target / relative
            with _disk_full_named(target, relative, entry.size):
                destination.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(self.object_path(entry.sha256), destination)


@contextmanager
def _disk_full_named(folder: Path, relative: str, size: int) -> Iterator[None]:
    """A full disk is one line naming where, what and how much, not an OSError."""
    try:
        yield
    except OSError as err:
        if not is_disk_full_error(err):
            raise
        raise DiskFullError(disk_full_message(folder, what=relative, needed=size)) from None


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system, or no hard links: a plain copy still works
        write_atomically(destination, lambda partial: shutil.copyfile(source, partial))
