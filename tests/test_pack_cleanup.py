"""Packing leaves no temporary folder behind: accepted, refused, or killed half-way.

blender-asset-tracer's Packer makes a folder ``bat-XXXXXXXX-batpack`` in the temporary
folder (tempfile's) and removes it when it is closed; Blender makes ``blender_XXXXXX`` for
its session and removes it at its exit (which stage_scene.py skips). A submit must not leave
either there, however it ends: looked for under a temporary folder of the test's own.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from braas_globus.errors import UsageError
from braas_globus.pack import PackPlan
from braas_globus.spec import Mode

from .conftest import wait_for
from .test_project_root import hostile_case, named_textures

BLENDER = {"kind": "python", "command": [sys.executable]}


def bat_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("bat-*-batpack"))


@pytest.fixture
def temp_dir(tmp_path, monkeypatch) -> Path:
    """tempfile's folder for this test (and TMPDIR for its subprocesses)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.mark.parametrize("mode", [Mode.DIRECTORY, Mode.PACKED])
def test_an_accepted_pack_holds_no_bat_folder_once_traced(scene, tmp_path, temp_dir, mode):
    plan = PackPlan(scene("anim6"), mode, tmp_path / "stage")
    try:
        assert plan.strategise(BLENDER) == []
        # The plan lives on while the job is staged (a transfer may take hours): BAT's
        # folder must not live with it.
        assert bat_folders(temp_dir) == []
        assert (tmp_path / "stage" / plan.execute()).is_file()
    finally:
        plan.close()
    # Nor Blender's session folder, nor BAT's decompressed copy of a compressed .blend.
    assert list(temp_dir.iterdir()) == []


def test_a_scene_with_missing_assets_holds_no_bat_folder(scene, tmp_path, temp_dir):
    plan = PackPlan(scene("missing"), Mode.DIRECTORY, tmp_path / "stage")
    try:
        assert len(plan.strategise(BLENDER)) == 1  # the submit refuses it
        assert bat_folders(temp_dir) == []
    finally:
        plan.close()
    assert list(temp_dir.iterdir()) == []


def test_a_refused_pack_holds_no_bat_folder(tmp_path, temp_dir):
    user = tmp_path / "user"
    blend = named_textures(user / "proj", hostile_case("absolute path outside", user,
                                                        tmp_path / "home"))
    plan = PackPlan(blend, Mode.DIRECTORY, tmp_path / "stage")
    with pytest.raises(UsageError, match="outside its project folder") as refused:
        plan.strategise(BLENDER)
    # The refusal (and its traceback, which holds the plan's frames) is still alive.
    assert refused.value is not None and bat_folders(temp_dir) == []
    plan.close()


def test_a_killed_submit_leaves_no_bat_folder(scene, home, temp_dir):
    """A submit killed once its job exists (packed, being staged) leaves no BAT folder."""
    blend = scene("anim6")
    process = subprocess.Popen([sys.executable, "-m", "braas_globus.cli", "submit", str(blend),
                                "--mode", "packed"],
                               env={**os.environ, "BRAAS_HOME": str(home),
                                    "TMPDIR": str(temp_dir)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = home / "jobs.sqlite"

    def configuring() -> bool:
        try:
            with sqlite3.connect(db_path) as db:
                return db.execute("SELECT count(*) FROM jobs").fetchone()[0] > 0
        except sqlite3.OperationalError:  # the store is not created yet
            return False

    try:
        wait_for(configuring, timeout=60, interval=0.02, what="the job record")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert bat_folders(temp_dir) == []


def test_a_scene_changed_between_two_packs_in_one_process_is_read_anew(tmp_path, temp_dir):
    """The add-on's Blender submits many times in one process: a second pack of a scene that
    changed since reads it as it is now, not as BAT parsed it the first time."""
    from .test_project_root import tiny_png

    project = tmp_path / "proj"
    tiny_png(project / "textures" / "first.png")
    tiny_png(project / "textures" / "second.png")
    blend = named_textures(project, "//textures/first.png")
    staged = []
    for run, texture in enumerate(("first", "second")):
        if texture == "second":
            blend = named_textures(project, "//textures/second.png")  # the artist's change
        plan = PackPlan(blend, Mode.DIRECTORY, tmp_path / f"stage{run}")
        try:
            assert plan.strategise(BLENDER) == []
            plan.execute()
        finally:
            plan.close()
        staged.append(sorted(p.name for p in (tmp_path / f"stage{run}").rglob("*.png")))
    assert staged == [["first.png"], ["second.png"]]


def test_a_copy_that_fails_half_way_stops_bats_copying_thread(scene, tmp_path, temp_dir,
                                                              monkeypatch):
    """A file that cannot be read while BAT queues its copies (gone, or unreadable): BAT's
    copying thread, no daemon, would wait for more files forever and the process (the CLI)
    could never exit."""
    import threading

    from blender_asset_tracer.pack import Packer
    from blender_asset_tracer.pack.transfer import FileTransferer

    def unreadable(self, asset_path, action):
        raise PermissionError(13, "Permission denied", str(asset_path))

    monkeypatch.setattr(Packer, "_copy_asset_and_deps", unreadable)
    plan = PackPlan(scene("anim6"), Mode.DIRECTORY, tmp_path / "stage")
    try:
        with pytest.raises(PermissionError):
            plan.strategise(BLENDER)
    finally:
        plan.close()
    left = [t for t in threading.enumerate() if isinstance(t, FileTransferer) and t.is_alive()]
    assert left == []
    assert bat_folders(temp_dir) == []


def test_a_move_bats_copying_thread_finishes_first_is_counted_not_an_error(tmp_path):
    """BAT 1.23's queue_move queues, then reads the size of a file its copying thread may
    have moved already. A STAND-IN transferer shaped as BAT's does the move between the two
    (what the thread did under load in CI): the pack goes on, the bytes are counted."""
    from braas_globus.pack import count_moves_before_they_happen

    class Transferer:  # BAT's FileTransferer's queue_move, with the thread's move inside it
        total_queued_bytes = 0

        def queue_move(self, src, dst):
            src.rename(dst)  # the copying thread, quicker than the next line
            self.total_queued_bytes += src.stat().st_size

    info = tmp_path / "pack-info.txt"
    info.write_text("This is a Blender Asset Tracer pack.\n")
    transferer = Transferer()
    with pytest.raises(FileNotFoundError):  # as BAT does it
        transferer.queue_move(info, tmp_path / "moved-once.txt")
    info.write_text("This is a Blender Asset Tracer pack.\n")
    count_moves_before_they_happen(transferer)
    transferer.queue_move(info, tmp_path / "moved.txt")
    assert transferer.total_queued_bytes == 37 and (tmp_path / "moved.txt").is_file()
    with pytest.raises(FileNotFoundError):  # a file that was never there is still an error
        transferer.queue_move(tmp_path / "absent.txt", tmp_path / "x.txt")
