"""Progress where users wait: time left and speed (progress.py), timestamped lines off a
terminal, JSON lines for `--json --wait`, and the same numbers in `info`."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from braas_globus.output import JsonLinesReporter, LineReporter
from braas_globus.progress import BYTES, FRAMES, PaceMeter, amount, duration, speed_and_left

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def line_reporter(title: str = "rendering") -> tuple[LineReporter, io.StringIO, Clock]:
    stream = io.StringIO()
    reporter = LineReporter(title, Console(file=stream, width=200))
    reporter.clock = clock = Clock()
    return reporter, stream, clock


def test_the_pace_is_measured_from_the_first_look_and_gives_the_time_left():
    meter = PaceMeter()
    assert meter.pace(4, 24, now=0.0).per_minute is None  # nothing measured yet
    pace = meter.pace(8, 24, now=60.0)  # 4 frames in a minute since the first look
    assert (pace.per_minute, pace.seconds_left) == (4.0, 240.0)
    assert speed_and_left(pace, FRAMES) == "4.0 frames/min, about 4 min left"
    assert meter.pace(2, 10, now=61.0).gained == 0  # fewer done: a new phase starts over
    assert amount(12_500_000, 80_000_000, BYTES) == "12.5/80.0 MB"
    assert [duration(s) for s in (42, 600, 11_100)] == ["42 s", "10 min", "3 h 05 min"]


def test_off_a_terminal_each_frame_is_a_timestamped_line_with_the_time_left():
    reporter, stream, clock = line_reporter()
    for done in range(0, 5):
        reporter.progress(done, 4)
        clock.now += 30
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and all(STAMP.match(line) for line in lines)
    assert lines[0].endswith("rendering: 0/4 frames")
    assert lines[2].endswith("rendering: 2/4 frames, 2.0 frames/min, about 60 s left")
    assert lines[4].endswith("rendering: 4/4 frames, 2.0 frames/min")


def test_off_a_terminal_a_long_frame_is_never_silence_and_bytes_do_not_flood():
    reporter, stream, clock = line_reporter()
    reporter.progress(1, 4)
    for _ in range(100):  # polls every 0.5 s for 50 s, no frame done
        clock.now += 0.5
        reporter.progress(1, 4)
    assert len(stream.getvalue().splitlines()) == 2  # the change, then one after 30 s
    reporter.step("uploading the scene")
    for sent in range(0, 100_000_001, 1_000_000):  # 1 MB a poll, a poll every 0.1 s
        reporter.progress(sent, 100_000_000, BYTES)
        clock.now += 0.1
    upload = stream.getvalue().splitlines()[2:]
    assert upload[0].endswith("uploading the scene")
    assert 2 <= len(upload) <= 5  # every 5 s, and the end
    assert upload[-1].endswith("uploading the scene: 100.0/100.0 MB, 10.0 MB/s")


def test_json_lines_are_one_event_per_change(capsys):
    reporter = JsonLinesReporter("rendering")
    reporter.clock = clock = Clock()
    reporter.step("rendering")
    for done in (0, 0, 1, 2):
        reporter.progress(done, 2)
        clock.now += 10
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["step", "progress", "progress", "progress"]
    assert events[2] | {"time": 0} == {"event": "progress", "time": 0, "phase": "rendering",
                                       "done": 1, "total": 2, "unit": "frames",
                                       "per_minute": 3.0, "seconds_left": 20.0}


def test_a_wait_off_a_terminal_says_how_the_render_goes(cli, scene):
    result = cli("submit", scene("anim6"), "--wait")
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    rendering = [line for line in lines if STAMP.match(line) and " rendering: " in line]
    assert rendering and rendering[-1].split(" rendering: ")[1].startswith("6/6 frames")
    assert any(STAMP.match(line) and "staging" in line for line in lines)  # submit's steps


def test_json_wait_writes_json_lines_ending_in_the_result(cli, scene):
    result = cli("submit", scene("anim6"), "--wait", "--json")
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    *events, summary = lines
    assert summary["state"] == "FINISHED" and summary["frames_done"] == 6
    assert {e["event"] for e in events} == {"step", "progress"}
    frames = [e for e in events if e["event"] == "progress" and e["unit"] == "frames"]
    assert frames[-1]["done"] == 6 and frames[-1]["total"] == 6
    alone = cli("submit", scene("anim12"), "--json")  # no wait: one document, no events
    assert "event" not in alone.json() and alone.json()["frames_total"] == 12


def test_info_says_how_long_a_job_took_its_speed_and_while_running_the_time_left(cli, home):
    from braas_globus.progress import job_pace
    from braas_globus.states import TaskState

    from .test_cleanup import make_job

    store = make_job("2026-01-01-00000000-a", days_ago=0)  # ended now, after 30 s
    info = cli("info", "last", "--json").json()
    assert info["progress"] == {"elapsed_seconds": 30.0, "frames_per_minute": None,
                                "seconds_left": None}  # ended, and no frame recorded
    running = make_job("2026-01-02-00000000-b", state=TaskState.RUNNING)
    job = running.job("2026-01-02-00000000-b")
    running.record_frame(job.id, 1, 0, done=True, file="out/000001.png", seconds=20)
    pace = job_pace(running.job(job.id), done=1, now=job.started + 60)
    assert pace == {"elapsed_seconds": 60.0, "frames_per_minute": 1.0, "seconds_left": 60.0}
    text = "\n".join(cli("info", "2026-01-01").stdout.splitlines())
    assert "frames     0/2 done, 0 failed, in 30 s" in text
    store.close()
