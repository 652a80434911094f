"""A full disk or a broken job store loses nothing, and says so in one line.

The faults are real: BRAAS_HOME on a small tmpfs filled until writes fail with ENOSPC,
and stores made by real jobs, then overwritten with garbage, cut short, or with garbage
over one of their pages. `store check` finds what is wrong; `store rebuild` brings the
jobs back from their folders, and `resume` renders only what is missing.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

from braas_globus.dispatch.local import runner_alive
from braas_globus.service import Service
from braas_globus.store import Store, StoreError
from braas_globus.worker import render_task
from braas_globus.worker.frames import format_frames, parse_frames
from braas_globus.worker.image_check import is_valid_image

from .conftest import frame_files, stop_runners, wait_for

TMPFS_SIZE = "24m"


# --- helpers ------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def openable_store_left(home):
    """A test that failed half-way may leave a damaged store: move it aside, so that the
    home fixture's clean-up (which opens the store to stop runners) still works."""
    yield
    path = home / "jobs.sqlite"
    if path.exists():
        try:
            Store(path).close()
        except StoreError:
            path.rename(path.with_name("jobs.sqlite.left-by-test"))


@pytest.fixture
def small_disk(home):
    """BRAAS_HOME on its own small tmpfs, which a test can really fill (as root)."""
    yield from tmpfs_at(home, f"size={TMPFS_SIZE},mode=0700")


@pytest.fixture
def few_inodes(home):
    """BRAAS_HOME on a tmpfs with room for a few files only: full once they are made, with
    its bytes still free (as a disk out of inodes is)."""
    yield from tmpfs_at(home, f"size={TMPFS_SIZE},nr_inodes=64,mode=0700")


def tmpfs_at(home: Path, options: str):
    home.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        reason = "no mount command here: a full disk cannot be made"
        print(reason)
        pytest.skip(reason)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options,
                           "tmpfs", str(home)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (f"cannot mount a tmpfs to fill up ({done.stderr.strip() or done.returncode});"
                  " these tests make a real full disk, as root")
        print(reason)
        pytest.skip(reason)
    try:
        yield home
    finally:
        try:
            stop_runners(home)  # opens the store: may fail, where the test failed
        finally:
            if subprocess.run(["umount", str(home)], capture_output=True,
                              check=False).returncode:
                subprocess.run(["umount", "-l", str(home)], capture_output=True, check=False)


def fill_up(home: Path, leave: int = 0) -> Path:
    """Write a filler file until the disk holding ``home`` has ``leave`` bytes free (0:
    until writes fail with ENOSPC)."""
    filler = home / f"filler-{len(list(home.glob('filler-*')))}"
    with open(filler, "wb", buffering=0) as out:
        if leave:
            out.write(b"\0" * (shutil.disk_usage(home).free - leave))
            return filler
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
    assert shutil.disk_usage(home).free == 0
    return filler


def use_up_inodes(home: Path) -> None:
    """Make empty files until no more can be made there (ENOSPC), bytes left free."""
    for count in range(100_000):
        try:
            (home / f"filler-{count}").touch()
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
            break
    assert shutil.disk_usage(home).free > 1 << 20


def free_up(home: Path) -> None:
    for filler in home.glob("filler-*"):
        filler.unlink()


def submit(cli, scene: Path, *args: str, wait: bool = True) -> dict:
    result = cli("submit", scene, *args, *(["--wait"] if wait else []), "--json")
    assert result.code == 0, result.stderr
    return result.json()


def info(cli, job_id: str) -> dict:
    result = cli("info", job_id, "--json")
    assert result.code == 0, result.stderr
    return result.json()


def one_line_error(result, *words: str) -> None:
    """Exit 1 or 2, one line on stderr holding ``words``, no traceback."""
    assert result.code in (1, 2), (result.code, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def leftovers(home: Path) -> dict:
    """What a failed submit must not leave: job folders, jobs, staged or half-written files."""
    with closing(Store(home / "jobs.sqlite")) as store:
        jobs = sorted((job.id, job.state.value) for job in store.jobs())
    return {"folders": sorted(p.name for p in (home / "jobs").iterdir()),
            "jobs": jobs,
            "partial": sorted(str(p) for p in home.rglob("*.partial") if p.is_file()),
            "staging": sorted(p.name for p in (home / "staging").glob("*"))}


def settle(path: Path) -> None:
    """Fold the store's write-ahead log into the file (as the last process to close it
    does), so that damage written into the file is what SQLite reads."""
    gc.collect()  # the in-process CLI leaves its connections to the collector
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # garbage over a middle page: the tasks table's, which the header does not show
        db = sqlite3.connect(path)
        page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.close()
        assert 1 < page < pages
        damaged = bytearray(data)
        damaged[(page - 1) * size: page * size] = os.urandom(size)
        path.write_bytes(bytes(damaged))


def start_records(folder: Path) -> list[dict]:
    lines = (folder / "job" / "progress" / "task-0000.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"start"' in line]


# --- a full disk --------------------------------------------------------------------

def test_a_full_disk_still_lists_and_refuses_a_submit_in_one_line_leaving_nothing(
        cli, scene, small_disk):
    home = small_disk
    blend = scene("anim6")
    job = submit(cli, blend, "--frames", "1-2")
    assert job["state"] == "FINISHED"
    before = leftovers(home)

    fill_up(home)
    assert [j["id"] for j in cli("list", "--json").json()] == [job["id"]]
    for args in (["list"], ["info", job["id"]], ["logs", job["id"]], ["store", "check"]):
        result = cli(*args)
        assert result.code == 0, (args, result.stderr)
    assert info(cli, job["id"])["frames"]["done"] == 2

    refused = cli("submit", blend, "--frames", "3")
    one_line_error(refused, "is full", str(home), "free space")
    assert leftovers(home) == before

    # Room to stage the scene, none for its 2 MB texture among the objects: the job is
    # recorded and fails while configuring; it is taken back out whole.
    free_up(home)
    big = blend.parent.parent / "big"
    shutil.copytree(blend.parent, big)
    texture = big / "textures" / "ground" / "grid.png"
    texture.write_bytes(texture.read_bytes() + b"\0" * 2_000_000)
    fill_up(home, leave=3 << 20)
    refused = cli("submit", big / blend.name, "--mode", "directory", "--frames", "1")
    one_line_error(refused, "is full", "grid.png", "bytes needed", "free space")
    assert leftovers(home) == before


def test_a_full_disk_while_rendering_keeps_the_frames_done_and_the_job_resumes(
        cli, scene, small_disk):
    home = small_disk
    job = submit(cli, scene("anim6"), "--frames", "1-300", wait=False)
    folder = Path(job["folder"])
    wait_for(lambda: len(frame_files(folder)) >= 3, what="three frames")
    fill_up(home)

    def runner_ended() -> bool:
        with closing(Store(home / "jobs.sqlite")) as store:
            return not runner_alive(store.job(job["id"]))

    wait_for(runner_ended, timeout=120, interval=0.5, what="the runner to end")
    with closing(Store(home / "jobs.sqlite")) as store:
        done = {row["frame"]: row["file"] for row in store.frames(job["id"])
                if row["state"] == "DONE"}
        task = store.tasks(job["id"])[0]
    log = (folder / "job" / "runner.log").read_text()
    assert "Traceback" not in log, log
    # Whichever failed first: the store (the runner stops) or the frames (the worker ends).
    assert ("stops: the disk holding" in log and "is full" in log) or \
        (task.reason or "").startswith("the disk holding"), (log, task)
    assert len(done) >= 3 and all(is_valid_image(folder / file) for file in done.values())
    assert all(is_valid_image(p) for p in (folder / "out").glob("*.png"))  # nothing cut short
    for args in (["list", "--json"], ["info", job["id"], "--json"]):  # its runner is gone
        result = cli(*args)
        assert result.code == 0 and "Traceback" not in result.stderr, (args, result.stderr)
    assert "not rendering" in (cli("info", job["id"], "--json").json()["warning"] or "")

    free_up(home)
    resumed = cli("resume", job["id"], "--wait", "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["state"] == "FINISHED" and resumed.json()["frames_done"] == 300
    assert set(done) <= set(parse_frames(start_records(folder)[-1]["skipped"]))


def test_the_worker_ends_an_attempt_on_a_full_disk_with_the_disk_named(cli, scene,
                                                                       small_disk):
    home = small_disk
    job = submit(cli, scene("anim6"), "--frames", "1-2")
    folder = Path(job["folder"])
    task = json.loads((folder / "job" / "tasks" / "task-0000.json").read_text())
    task_file = folder / "job" / "tasks" / "task-0001.json"
    task_file.write_text(json.dumps({**task, "task": 1, "frames": "3-6", "attempt": 1}))
    fill_up(home)

    done = subprocess.run([sys.executable, render_task.__file__, str(task_file)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    end = json.loads(done.stdout.splitlines()[-1])
    assert end["event"] == "end" and end["state"] == "FAILED"
    assert end["reason"].startswith(f"the disk holding {folder} is full"), end
    assert frame_files(folder) == ["000001.png", "000002.png"]  # kept, and nothing cut short
    assert all(is_valid_image(p) for p in (folder / "out").glob("*.png"))


def test_an_unexpected_error_on_a_full_disk_is_still_one_line(cli, small_disk, monkeypatch):
    home = small_disk
    assert cli("list").code == 0  # the store exists
    fill_up(home)

    def broken(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Service, "list_jobs", broken)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(home / "tmp"))  # full as well
    result = cli("list")
    one_line_error(result, "is full", "RuntimeError: a bug", "nowhere")
    assert not [p for p in home.rglob("braas-globus-*.txt")]  # no cut-short crash report


def test_a_store_opened_read_only_on_a_full_disk_says_so_when_written(small_disk):
    home = small_disk
    path = home / "jobs.sqlite"
    Store(path).close()
    fill_up(home)
    with closing(Store(path)) as store:
        assert store.read_only and store.jobs() == []  # read, as `list` does
        with pytest.raises(StoreError) as refused:
            store.set_runner("a-job", 1)
    assert refused.value.kind == "full"
    assert str(refused.value) == (f"the disk holding {home} is full, so the job store {path} "
                                  "can be read but not changed: free space there, then retry "
                                  "(nothing in the store was changed)")


def test_a_disk_out_of_inodes_is_a_full_disk_and_the_store_is_still_read(cli, few_inodes):
    """SQLite cannot make its shared-memory file there ("unable to open database file"),
    while bytes are free: that is the full disk, not a store that cannot be opened."""
    home = few_inodes
    path = home / "jobs.sqlite"
    Store(path).close()
    use_up_inodes(home)
    with closing(Store(path)) as store:
        assert store.read_only and store.jobs() == []
        with pytest.raises(StoreError, match=f"the disk holding {home} is full") as refused:
            store.set_runner("a-job", 1)
    assert refused.value.kind == "full"
    assert cli("list").code == 0
    check = cli("store", "check", "--json")
    assert check.code == 0 and check.json()["ok"], check.stdout


# --- a broken store -----------------------------------------------------------------

def test_a_value_of_the_wrong_type_in_the_store_is_damage_in_one_line(cli, home):
    """SQLite keeps text in an INTEGER column it cannot convert: read, that is damage."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "jobs.sqlite"
    with closing(Store(path)) as store:
        store.create_job(job_id="j", project="p", preset="local", backend="local", spec={},
                         frames="1-3", frame_count=3, folder=home / "jobs" / "j")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE jobs SET frame_count = 'many'")
    one_line_error(cli("list"), f"the job store {path} is damaged", "a str where a whole "
                   "number belongs", "store rebuild")
    with closing(sqlite3.connect(path)) as db, db:  # for the clean-up, which lists the jobs
        db.execute("UPDATE jobs SET frame_count = 3")


SQUARES = [n * n for n in range(300)]  # 300 items in a spec: counted outside SQLite


@pytest.mark.parametrize("frames, done, failed, expected", [
    ("1-3", [1, 2, 2, 7, 0], [3, 8], (2, 1)),  # 2 twice; 7, 0 and 8 not the job's
    ("1-9:4", [1, 9, 3, 13], [5, 6], (2, 1)),  # 3 and 6 inside the range, off its step
    (format_frames(SQUARES), [0, 1, 4, 9, 16, 2, 3], [25, 26], (5, 1)),
    ("3,1,2-3", [1, 2, 3, 4], [], (3, 0)),  # a spec not normalised: its items overlap
])
def test_only_the_jobs_own_frames_count_as_done_or_failed(home, frames, done, failed,
                                                          expected):
    """A frame row of a frame the job does not render (a store written by hand, or by an
    older braas-globus) is counted neither done nor failed, and a frame recorded twice
    once: frames_done stays within frame_count."""
    home.mkdir(parents=True, exist_ok=True)
    with closing(Store(home / "jobs.sqlite")) as store:
        store.create_job(job_id="j", project="p", preset="local", backend="local", spec={},
                         frames=frames, frame_count=len(parse_frames(frames)),
                         folder=home / "jobs" / "j")
        for frame in done:
            store.record_frame("j", frame, 0, done=True, file=f"out/{frame:06d}.png")
        for frame in failed:
            store.record_frame("j", frame, 0, done=False, reason="it failed")
        job = store.job("j")
        assert (job.frames_done, job.frames_failed) == expected
        assert [(j.frames_done, j.frames_failed) for j in store.jobs()] == [expected]


@pytest.mark.parametrize("how", ["garbage", "truncated", "damaged page"])
def test_a_broken_store_is_one_line_and_store_rebuild_brings_the_jobs_back(cli, scene, home,
                                                                           how):
    job = submit(cli, scene("anim6"), "--frames", "1-3")
    before = info(cli, job["id"])
    assert cli("store", "check").code == 0
    nothing = cli("store", "rebuild")  # a sound store is left as it is
    assert nothing.code == 0 and "nothing to rebuild" in nothing.stdout
    path = home / "jobs.sqlite"
    settle(path)
    damage(path, how)
    damaged = path.read_bytes()

    for args in (["list"], ["info", job["id"]], ["logs", job["id"]], ["resume", job["id"]]):
        one_line_error(cli(*args), str(path), "store check", "store rebuild")
    check = cli("store", "check", "--json")
    assert check.code == 1 and not check.json()["ok"]
    assert any(str(path) in problem for problem in check.json()["problems"])
    assert f"job folder {home / 'jobs' / job['id']} has no record" in \
        " ".join(check.json()["problems"]) or how == "damaged page"
    assert path.read_bytes() == damaged  # reading it wrote nothing

    rebuilt = cli("store", "rebuild", "--json")
    assert rebuilt.code == 0, rebuilt.stderr
    aside = Path(rebuilt.json()["moved_aside"][0])
    assert aside.name.startswith("jobs.sqlite.damaged-") and aside.read_bytes() == damaged
    assert rebuilt.json()["jobs"] == [{"id": job["id"], "state": "FINISHED", "frames_done": 3,
                                       "frame_count": 3}]
    after = info(cli, job["id"])
    assert after["state"] == "FINISHED" and after["frames"] == before["frames"]
    assert after["tasks"][0]["frames"] == "1-3" and after["last_frame"]["frame"] == 3
    assert cli("store", "check").code == 0


def test_an_empty_store_beside_job_folders_is_refused_and_a_rebuilt_job_resumes(cli, scene,
                                                                                home):
    job = submit(cli, scene("anim6"), "--frames", "1-60", wait=False)
    folder = Path(job["folder"])
    wait_for(lambda: len(frame_files(folder)) >= 3, what="three frames")
    assert cli("cancel", job["id"]).code == 0
    rendered = sorted(int(name[:6]) for name in frame_files(folder))
    path = home / "jobs.sqlite"
    settle(path)

    path.write_bytes(b"")  # a store cut to nothing, beside its job folder
    one_line_error(cli("list"), "is empty", "1 job folder", "store rebuild")
    assert path.stat().st_size == 0  # refused, not started empty
    path.unlink()
    one_line_error(cli("list"), "is missing", "store rebuild")
    assert not path.exists()

    rebuilt = cli("store", "rebuild", "--json")
    assert rebuilt.code == 0, rebuilt.stderr
    assert rebuilt.json()["jobs"] == [{"id": job["id"], "state": "CANCELED",
                                       "frames_done": len(rendered), "frame_count": 60}]
    details = info(cli, job["id"])
    assert details["frames"]["by_state"]["DONE"] == format_frames(rendered)

    resumed = cli("resume", job["id"], "--wait", "--json")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["state"] == "FINISHED" and resumed.json()["frames_done"] == 60
    last = start_records(folder)[-1]
    assert last["skipped"] == format_frames(rendered)  # only the missing frames rendered
    assert last["pending"] == format_frames(sorted(set(range(1, 61)) - set(rendered)))


def test_store_rebuild_brings_a_split_still_back_with_its_parts_and_merge(cli, scene, home):
    job = submit(cli, scene("anim6"), "--image", "--split", "2", "--samples", "4")
    before = info(cli, job["id"])
    assert before["state"] == "FINISHED" and before["split"]["merge"]["state"] == "FINISHED"
    path = home / "jobs.sqlite"
    settle(path)
    damage(path, "garbage")

    rebuilt = cli("store", "rebuild", "--json")
    assert rebuilt.code == 0, rebuilt.stderr
    assert rebuilt.json()["jobs"] == [{"id": job["id"], "state": "FINISHED", "frames_done": 2,
                                       "frame_count": 2}]
    after = info(cli, job["id"])
    assert after["unit"] == "parts" and after["split"] == before["split"]
    assert after["last_frame"] == before["last_frame"]
    assert cli("resume", job["id"], "--json").json()["state"] == "FINISHED"  # nothing to do
