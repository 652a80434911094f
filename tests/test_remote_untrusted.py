"""What a centre sends back is untrusted input: progress records, Compute results and file
names are parsed strictly, bounded in size, and never followed outside the job folder.

Hostile centres are played through the Globus stand-ins of test_globus_backend.py (real
SDK clients, real endpoint engine), and the local runner through a worker that prints
hostile records. Every test checks what a user sees: `info` and `list` work (exit 0), the
frames done are the job's own, and no file outside the job folder is named.
"""
# ruff: noqa: F811  (tests take the imported `centre` fixture as an argument)

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from braas_globus import records
from braas_globus.dispatch import compute_task, local_runner, policy
from braas_globus.endpoint_config import load_schema
from braas_globus.plan import PlannedTask
from braas_globus.presets import add_preset
from braas_globus.settings import load_settings
from braas_globus.states import TaskState
from braas_globus.store import Store
from braas_globus.transfer import JobTransfers
from braas_globus.worker.frames import MAX_FRAME

# The centre fixture (stand-ins around a real endpoint engine) and its helpers.
from .test_globus_backend import CENTRE, ENDPOINT, MINE, centre, submit  # noqa: F401
from .test_image_check import png_bytes

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def line(**fields) -> str:
    return json.dumps({"task": 0, "attempt": 1, "time": 4e9, **fields})


def frame_line(frame, file=None, **fields) -> str:
    return line(event="frame", frame=frame, state="done",
                file=file if file is not None else f"out/{frame:06d}.png", **fields)


# Records no worker writes, each with a later time than the real ones (so each would be
# the last frame if it counted). Task 0 of the job renders frames 1-2.
HOSTILE_LINES = [
    *[frame_line(frame) for frame in range(3, 1003)],  # frames of no task of the job
    frame_line(300002), frame_line(MAX_FRAME + 1), frame_line(-1),
    frame_line(2, file="/etc/shadow"), frame_line(2, file="../../x"),
    frame_line(2, file="out/../../../x.png"), frame_line(2, file="out/000001.png"),
    frame_line(2, file="out/000002.png\n"), frame_line(2, file="out\\000002.png"),
    frame_line(2, file="out/0000002.png"), frame_line(2, file="./out/000002.png"),
    frame_line("2", file="out/000002.png"), frame_line([2], file="out/000002.png"),
    frame_line(10**30), frame_line(2.0, file="out/000002.png"), frame_line(True),
    frame_line(2, task="0"), frame_line(2, task=1), frame_line(2, task=None),
    line(event="frame", frame=2, state="DONE", file="out/000002.png"),
    line(event="frame", frame=2, state=None), line(event="frame", frame=2, state="done"),
    frame_line(2, seconds="fast"), frame_line(2, seconds=-1), frame_line(2, time="late"),
    line(event="frame", frame=2, state="failed", reason=["not", "text"]),
    line(event="rendered", frame=2), line(event=7), line(), json.dumps({"task": 0}),
    line(event="end", state="DONE"), line(event="end", state="FINISHED", missing="1-9"),
    line(event="end", state="FINISHED", missing="0-1048574"),
    line(event="end", state="FINISHED", missing=[1]),
    line(event="missing", file=5), line(event="missing", file="x" * 70_000),
    '{"task": 0, "event": "frame", "frame": ' + "9" * 5000 + "}",
    "[" * 30_000 + "]" * 30_000, "[1, 2]", "null", "42", "not json at all", "\ufffe garbage",
]


def hostile_centre_records(remote_job: Path) -> tuple[int, int]:
    """Append the hostile records at the centre; returns how many records that is, and the
    line of the first one."""
    progress = remote_job / "job" / "progress"
    first = len((progress / "task-0000.jsonl").read_text().splitlines()) + 1
    with (progress / "task-0000.jsonl").open("a", encoding="utf-8") as out:
        for text in HOSTILE_LINES:
            out.write(text + "\n")
        out.write(line(event="missing", file="textures/gone.png", owner="Image 'gone'") + "\n")
    # A records file for a task the job does not have.
    (progress / "task-0007.jsonl").write_text(line(task=7, event="frame", frame=1,
                                                   state="done", file="out/000001.png") + "\n")
    return len(HOSTILE_LINES) + 1, first


def no_outside_path(info: dict) -> None:
    text = json.dumps(info)
    assert "/etc/shadow" not in text and "../" not in text


def test_hostile_progress_records_count_no_frame_and_name_no_file_outside(cli, scene, centre):
    job = submit(cli, scene("anim6"), "--frames", "1-2")
    centre.compute.wait_all()
    rejected, first = hostile_centre_records(centre.dir / "jobs" / job["id"])

    downloaded = cli("download", job["id"], "--json")
    assert downloaded.code == 0, downloaded.stderr
    assert downloaded.json()["frames_valid"] == 2
    for _ in range(2):  # every call works, not only the first
        result = cli("info", job["id"], "--json")
        assert result.code == 0, result.stderr
        info = result.json()
        assert info["state"] == "FINISHED"
        assert (info["frames"]["done"], info["frames"]["total"]) == (2, 2)
        assert info["frames"]["by_state"] == {"DONE": "1,2"}
        folder = Path(job["folder"])
        assert info["last_frame"]["frame"] == 2
        assert info["last_frame"]["file"] == str(folder / "out" / "000002.png")
        assert info["missing_files"] == ["textures/gone.png"]  # a well-formed record counts
        assert info["rejected_records"]["count"] == rejected
        assert info["rejected_records"]["reasons"][:2] == [  # the first ten, one line each
            f"task-0000.jsonl line {first}: frame 3 is not a frame of task 0",
            f"task-0000.jsonl line {first + 1}: frame 4 is not a frame of task 0"]
        assert info["warning"].startswith(f"ignored {rejected} progress records")
        no_outside_path(info)
    listed = cli("list", "--json")
    assert listed.code == 0, listed.stderr
    assert [(j["frames_done"], j["frames_total"]) for j in listed.json()] == [(2, 2)]
    human = cli("info", job["id"])
    assert human.code == 0 and "2/2 done" in human.stdout and "Traceback" not in human.stderr


def test_a_huge_records_file_is_read_only_up_to_its_bound(cli, scene, centre):
    job = submit(cli, scene("anim6"), "--frames", "1-2")
    centre.compute.wait_all()
    progress = centre.dir / "jobs" / job["id"] / "job" / "progress" / "task-0000.jsonl"
    real = progress.read_text()
    filler = frame_line(1, seconds=1.0) + "\n"
    with progress.open("a") as out:
        out.write(filler * (records.MAX_FILE_BYTES // len(filler) + 1000))
        out.write(frame_line(2, seconds=42.0) + "\n")  # past the bound: never read

    assert cli("download", job["id"]).code == 0
    info = cli("info", job["id"], "--json").json()
    assert (info["frames"]["done"], info["frames"]["total"]) == (2, 2)
    assert info["rejected_records"] == {"count": 1, "reasons": [
        f"task-0000.jsonl: over {records.MAX_FILE_BYTES >> 20} MiB, read no further"]}
    assert Path(info["last_frame"]["file"]).is_file()
    read = records.read_progress(records.JobScope(Path(job["folder"])))
    assert len(read.records) <= len(real.splitlines()) + records.MAX_FILE_BYTES // len(filler)
    assert not any(getattr(r, "seconds", None) == 42.0 for r in read.records)


def centre_returns(task, job_root):
    """A centre's Compute function that returns, for each task, what the test wrote in the
    file HOSTILE_RESULTS names ("HUGE": an 11 MB string; "RAISE": it raises). Sent by
    source, so it is self-contained."""
    import json
    import os
    from pathlib import Path

    results = json.loads(Path(os.environ["HOSTILE_RESULTS"]).read_text())
    result = results[str(task["task"])]
    if result == "RAISE":
        raise RuntimeError("the node caught fire")
    return "x" * (11 << 20) if result == "HUGE" else result


MALFORMED = "the centre returned a malformed result: "
FAILED_THERE = "the task failed at the centre: "
MALFORMED_RESULTS = [  # (what task i, frame i + 1, returns; how its reason starts)
    ({"event": "end", "state": "FINISHED", "missing": "", "reason": ""}, None),
    ("garbage", MALFORMED + "a str, not the worker's closing record"),
    (None, MALFORMED + "a NoneType, not the worker's closing record"),
    (42, MALFORMED + "a int, not"),
    ("RAISE", FAILED_THERE + "RuntimeError: the node caught fire"),
    ({"state": "DONE"}, MALFORMED),
    ({"event": "end", "state": "RUNNING", "missing": ""}, MALFORMED + "state: "),
    ({"event": "end", "state": "FINISHED", "missing": [8]}, MALFORMED + "missing: "),
    ({"event": "end", "state": "FINISHED", "missing": "1-1048574"},
     MALFORMED + "missing names more frames than task 8 has"),
    ({"event": "end", "state": "FINISHED", "missing": "", "task": 0},
     MALFORMED + "the closing record of task 0, not of task 9"),
    ({"event": "frame", "frame": 11, "state": "done", "file": "out/000011.png", "task": 10},
     MALFORMED + "a frame record, not"),
    ("HUGE", FAILED_THERE),  # the endpoint refuses a result over 10 MB (as the service does)
]


def test_a_malformed_compute_result_fails_its_attempt_and_list_and_info_work(
        cli, scene, centre, home, tmp_path, monkeypatch):
    add_preset(home, name="karolina-wide", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir=str(centre.dir), local_collection_id=MINE, runtime="host",
               max_blocks=4, nodes_per_block=3)  # 12 slots: one task per frame
    results = tmp_path / "results.json"
    results.write_text(json.dumps({str(i): r for i, (r, _) in enumerate(MALFORMED_RESULTS)}))
    monkeypatch.setenv("HOSTILE_RESULTS", str(results))
    monkeypatch.setattr(compute_task, "render_on_worker", centre_returns)
    result = cli("submit", scene("anim12"), "--preset", "karolina-wide", "--retries", "0",
                 "--json")
    assert result.code == 0, result.stderr
    job = result.json()
    centre.compute.wait_all()

    for _ in range(2):  # every call works, not only the first
        listed = cli("list", "--json")
        assert listed.code == 0, listed.stderr
        assert [(j["state"], j["frames_done"]) for j in listed.json()] == [("FAILED", 1)]
        shown = cli("info", job["id"], "--json")
        assert shown.code == 0, shown.stderr
        info = shown.json()
        assert info["state"] == "FAILED"
        assert (info["frames"]["done"], info["frames"]["failed"]) == (1, 11)
        tasks = info["tasks"]
        assert len(tasks) == len(MALFORMED_RESULTS)
        assert (tasks[0]["state"], tasks[0]["reason"]) == ("FINISHED", None)
        for task, (_, reason) in zip(tasks[1:], MALFORMED_RESULTS[1:]):
            assert task["state"] == "FAILED", task
            assert task["reason"].startswith(reason), task
            assert len(task["reason"]) < 300  # the huge result is not copied into the store
    assert "MaxResultSizeExceeded" in tasks[11]["reason"]
    human = cli("info", job["id"])
    assert human.code == 0 and "1/12 done, 11 failed" in human.stdout


def test_download_refuses_a_name_with_a_trailing_newline(cli, scene, centre):
    job = submit(cli, scene("anim6"), "--frames", "1")
    centre.compute.wait_all()
    (centre.dir / "jobs" / job["id"] / "out" / "000001.png\n").write_bytes(png_bytes())
    result = cli("download", job["id"])
    assert result.code == 1 and "refusing to download" in result.stderr
    assert "'000001.png\\n'" in result.stderr  # named with its newline, on one line
    assert len(result.stderr.strip().splitlines()) == 1
    assert not [p for p in Path(job["folder"]).rglob("*") if "\n" in p.name]
    info = cli("info", job["id"], "--json")
    assert info.code == 0 and info.json()["frames"]["done"] == 1


class ListingClient:
    """A Transfer client whose folder listing is whatever the test says."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def operation_ls(self, collection, path):
        return [{"name": name, "type": "file", "size": 10} for name in self.names]


@pytest.mark.parametrize(("folder", "name", "accepted"), [
    ("out", "000001.png", True), ("out", "1048574.exr", True), ("out", "000012.jpg", True),
    ("out", "000001.png\n", False), ("out", "0001.png", False), ("out", "0000001.png", False),
    ("out", "000001.PNG", False), ("out", "000001.png.sh", False), ("out", "..", False),
    ("out", "x.png", False), ("out", "task-0000.log", False),
    ("out/parts", "part-0003.exr", True), ("out/parts", "part-0003.exr\n", False),
    ("out/parts", "part-3.exr", False), ("out/parts", "part-0003.png", False),
    ("out/parts", "000001.exr", False), ("out/parts", "..", False),
    ("log", "task-0000.log", True), ("log", "task-0000.log\n", False),
    ("log", "task-00000.log", False), ("log", "runner.log", False),
    ("job/progress", "task-0003.jsonl", True), ("job/progress", "task-0003.jsonl\n", False),
    ("job/progress", "task-3.jsonl", False), ("job/progress", "000001.png", False),
])
def test_a_download_accepts_exactly_the_names_a_task_writes(home, folder, name, accepted):
    from braas_globus.errors import RunError
    from braas_globus.presets import get_preset

    add_preset(home, name="karolina-cpu", cluster="karolina", partition="qcpu",
               account="DD-24-1", endpoint_id=ENDPOINT, collection_id=CENTRE,
               remote_dir="/scratch/braas", local_collection_id=MINE)
    transfers = JobTransfers(ListingClient([name]), get_preset("karolina-cpu", home), home)
    names = records.RESULT_NAMES[folder]
    if accepted:
        assert transfers._remote_files(f"/scratch/braas/jobs/j/{folder}", names) == [(name, 10)]
    else:
        with pytest.raises(RunError, match="refusing to download"):
            transfers._remote_files(f"/scratch/braas/jobs/j/{folder}", names)


# --- the local runner reads the worker's stdout with the same parser ----------------------

def local_job(home: Path, tmp_path: Path) -> tuple[Store, str, Path]:
    """A job of this machine with one task, frames 1-2, whose frame files are there."""
    store = Store(load_settings().store_path)
    folder = tmp_path / "job"
    (folder / "out").mkdir(parents=True)
    (folder / "job").mkdir()
    for frame in (1, 2):
        (folder / "out" / f"{frame:06d}.png").write_bytes(png_bytes())
    spec = {"scene": "scene.blend", "device": None, "walltime_minutes": 5, "max_jobs": 1,
            "allow_scripts": False, "allow_missing": False}
    store.create_job(job_id="job-1", project="p", preset="local", backend="local", spec=spec,
                     frames="1-2", frame_count=2, folder=folder)
    store.add_tasks("job-1", [PlannedTask(0, "1-2", 2)], max_attempts=1,
                    blender={"kind": "python", "command": [sys.executable]},
                    entry="in/scene.blend")
    return store, "job-1", folder


def test_hostile_worker_records_on_stdout_count_no_frame(cli, home, tmp_path, monkeypatch,
                                                          capsys):
    store, job_id, folder = local_job(home, tmp_path)
    (tmp_path / "outside.png").write_bytes(png_bytes())
    worker_lines = [frame_line(1), *HOSTILE_LINES, frame_line(2, time=4.1e9),
                    line(event="end", state="FINISHED", missing="", reason="", time=4.2e9),
                    "x" * (records.MAX_LINE_BYTES * 3)]  # cut, refused, and then skipped
    worker = tmp_path / "worker.py"
    worker.write_text(f"for text in {worker_lines!r}:\n    print(text)\n")
    monkeypatch.setattr(local_runner, "RENDER_TASK", worker)

    capsys.readouterr()
    local_runner.Runner(store, job_id, slots=1,
                        machine_slots=local_runner.MachineSlots(home / "slots", 1)).run()
    ignored = [text for text in capsys.readouterr().out.splitlines()
               if text.startswith("task 0: ignored a worker record: ")]
    assert len(ignored) == len(HOSTILE_LINES) + 1

    result = cli("info", job_id, "--json")
    assert result.code == 0, result.stderr
    info = result.json()
    assert info["state"] == "FINISHED"
    assert (info["frames"]["done"], info["frames"]["total"]) == (2, 2)
    assert info["last_frame"] == {"frame": 2, "file": str(folder / "out" / "000002.png")}
    no_outside_path(info)

    # A link in out/ that leads out of the job folder is never named as the last frame.
    (folder / "out" / "000002.png").unlink()
    (folder / "out" / "000002.png").symlink_to(tmp_path / "outside.png")
    info = cli("info", job_id, "--json").json()
    assert info["last_frame"] == {"frame": 2, "file": None}
    assert str(tmp_path / "outside.png") not in json.dumps(info)


def test_rows_an_older_version_stored_from_hostile_records_are_not_counted(cli, home,
                                                                          tmp_path):
    store, job_id, _ = local_job(home, tmp_path)
    store.start_task(job_id, 0)
    store.record_frame(job_id, 1, 0, done=True, file="out/000001.png")
    for frame in range(1000, 300_001, 1000):  # frames the job does not have
        store.record_frame(job_id, frame, 0, done=True, file=f"out/{frame:06d}.png")
    store.record_frame(job_id, 2, 0, done=True, file="/etc/shadow")
    policy.settle_attempt(store, job_id, 0, TaskState.FINISHED)
    result = cli("info", job_id, "--json")
    assert result.code == 0, result.stderr
    info = result.json()
    assert (info["frames"]["done"], info["frames"]["total"]) == (2, 2)
    assert info["last_frame"] == {"frame": 2, "file": None}
    no_outside_path(info)


# --- fuzz: nothing a centre sends makes the parsers raise or accept a foreign frame -------

JOB_FOLDER = Path("/nonexistent/job")
SCOPE = records.JobScope(JOB_FOLDER, {0: frozenset({1, 2}), 1: frozenset({3})})
junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                      st.integers(), max_size=2))
record_values = {
    "task": st.one_of(st.sampled_from([0, 1, 2, 10**20, -1]), junk),
    "attempt": st.one_of(st.integers(-2, 3), junk),
    "time": st.one_of(st.floats(), junk),
    "event": st.one_of(st.sampled_from(["start", "running", "frame", "missing", "end"]), junk),
    "frame": st.one_of(st.integers(-3, MAX_FRAME + 3), st.sampled_from([1, 2, 3]), junk),
    "state": st.one_of(st.sampled_from(["done", "failed", "FINISHED", "FAILED", "CANCELED",
                                        "TIMEOUT", "RUNNING", "QUEUED"]), junk),
    "file": st.one_of(st.sampled_from(["out/000001.png", "out/000002.exr", "/etc/shadow",
                                       "../out/000001.png", "out/000001.png\n", "out/1.png"]),
                      st.text(max_size=20), junk),
    "missing": st.one_of(st.sampled_from(["", "1", "1-2", "1-1048574", "3", "2-1", "1-9:0",
                                          "x"]), st.text(max_size=12), junk),
    "seconds": st.one_of(st.floats(), junk),
    "reason": st.one_of(st.text(max_size=50), junk),
}
record_dicts = st.fixed_dictionaries({}, optional=record_values)


@SETTINGS
@given(data=record_dicts, task=st.sampled_from([0, 1, 5]))
def test_fuzz_the_record_parser_accepts_only_the_tasks_own_frames(data, task):
    try:
        record = records.parse_line(json.dumps(data), SCOPE, task)
    except records.RecordError as err:
        assert "\n" not in str(err) and len(str(err)) <= 200
        return
    assert record.task == task and task in SCOPE.task_frames
    if isinstance(record, records.FrameRecord):
        assert record.frame in SCOPE.task_frames[task]
        assert record.file is None or records.frame_of_file(record.file) == record.frame


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_fuzz_the_record_parser_on_any_line(text):
    try:
        records.parse_line(text, SCOPE, 0)
    except records.RecordError:
        pass


@SETTINGS
@given(status=st.one_of(junk, st.fixed_dictionaries({}, optional={
    "status": st.one_of(st.sampled_from(["success", "failed", "unknown"]), junk),
    "exception": junk, "reason": junk,
    "result": st.one_of(record_dicts, junk)})))
def test_fuzz_a_compute_result_is_an_outcome(status):
    frames = frozenset({1, 2})
    outcome = records.task_outcome(status, 0, frames)
    assert outcome.state.is_final and outcome.missing <= frames
    assert isinstance(outcome.reason, str) and len(outcome.reason) <= \
        records.MAX_TEXT_CHARS + 3
    if outcome.state is TaskState.FINISHED:
        assert status["result"]["state"] == "FINISHED"


SCHEMA_KEYS = sorted(load_schema("karolina")["properties"])
option_values = st.one_of(
    st.text(max_size=30), st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    st.sampled_from(["²", "٣", "１２", "-5", "1e3", "0x10", "9" * 5000, " 10", "10\n",
                     "DD-24-1", "DD-24-1\n", "qcpu", "qgpu_exp", "a@b.cz", "a@b.cz\n#SBATCH"]))
options = st.lists(st.tuples(st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=10)),
                             option_values).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=6)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chosen=options, base=st.booleans())
def test_fuzz_every_endpoint_option_is_one_line_or_a_config(cli, chosen, base):
    given_options = (["account=DD-24-1", "partition=qcpu", "walltime_minutes=30"]
                     if base else []) + chosen
    args = ["endpoints", "render", "karolina"]
    for option in given_options:
        args += ["--option", option]
    result = cli(*args)
    assert result.code in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    if result.code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("value", ["²", "9" * 4301, "١٢", "12\n"])
def test_a_walltime_that_is_not_ascii_digits_is_one_line_and_exit_2(cli, value):
    result = cli("endpoints", "render", "karolina", "--option", "account=DD-24-1",
                 "--option", "partition=qcpu", "--option", f"walltime_minutes={value}")
    assert result.code == 2
    assert result.stderr.startswith("error: endpoint option for karolina: walltime_minutes")
    assert len(result.stderr.strip().splitlines()) == 1
