"""Bad input of every kind: one clear line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def nothing_written(home: Path) -> bool:
    jobs = home / "jobs"
    no_folders = not jobs.exists() or not any(jobs.iterdir())
    no_records = True
    if (home / "jobs.sqlite").exists():
        import sqlite3

        with sqlite3.connect(home / "jobs.sqlite") as db:
            no_records = db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
    return no_folders and no_records


def bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.txt"
    text.write_text("hello")
    garbage = folder / "garbage.blend"
    garbage.write_bytes(b"this is not a blend file" * 40)
    empty = folder / "empty.blend"
    empty.write_bytes(b"")
    return {"text": text, "garbage": garbage, "empty": empty, "dir": folder}


SUBMIT_CASES = [
    # (id, scene kind, extra args, words the one line must contain)
    ("missing file", "nope", [], "does not exist"),
    ("not a .blend", "text", [], "not a .blend file"),
    ("a folder", "dir", [], "not a file"),
    ("corrupt .blend", "garbage", [], "not a readable .blend"),
    ("empty .blend", "empty", [], "not a readable .blend"),
    ("truncated .blend", "truncated", [], ".blend"),
    ("reversed range", "ok", ["--frames", "10-1"], "reversed range"),
    ("step 0", "ok", ["--frames", "1-10:0"], "step 0"),
    ("garbage frames", "ok", ["--frames", "one-ten"], "is not a frame"),
    ("frame past Blender's last", "ok", ["--frames", "1-2000000"], "Blender's last frame"),
    ("shell in frames", "ok", ["--frames", "1;touch /tmp/x"], "is not a frame"),
    ("walltime 0", "ok", ["--walltime", "0"], "walltime"),
    ("walltime 2881", "ok", ["--walltime", "2881"], "walltime"),
    ("walltime not a number", "ok", ["--walltime", "ten"], "--walltime"),
    ("max-jobs 0", "ok", ["--max-jobs", "0"], "max-jobs"),
    ("max-jobs 10001", "ok", ["--max-jobs", "10001"], "max-jobs"),
    ("project too long", "ok", ["--project", "x" * 26], "at most 25"),
    ("project empty", "ok", ["--project", "  "], "empty"),
    ("project with shell", "ok", ["--project", "a;rm -rf"], "project"),
    ("bad email", "ok", ["--email", "someone@"], "not an email"),
    ("email with newline", "ok", ["--email", "a@b.cz\n#SBATCH --uid=0"], "not an email"),
    # The centres' schemas refuse these: refused at submit by the same rule (spec.py).
    ("email the centres refuse", "ok", ["--email", "%x@example.org"], "not an email"),
    ("email local part too long", "ok", ["--email", "a" * 65 + "@example.org"], "not an email"),
    ("unknown preset", "ok", ["--preset", "karolina-gpu"], "unknown preset"),
    ("bad preset name", "ok", ["--preset", "../etc"], "preset"),
    ("unknown mode", "ok", ["--mode", "zip"], "--mode"),
    ("unknown device", "ok", ["--device", "TPU"], "--device"),
    ("retries 11", "ok", ["--retries", "11"], "retries"),
    ("image and frames", "ok", ["--image", "--frames", "1-3"], "either --image or --frames"),
    # Render settings over the scene's: checked by the spec, and against the scene.
    ("unknown camera", "ok", ["--camera", "Side"], "has no such camera (its cameras: 'Camera')"),
    ("unknown view layer", "ok", ["--view-layer", "ViewLayer", "--view-layer", "Fg"],
     "--view-layer 'Fg': scene 'Scene' of scene.blend has no such view layer (its view "
     "layers: 'ViewLayer')"),
    ("view layer twice", "ok", ["--view-layer", "A", "--view-layer", "A"], "named twice"),
    ("camera with a newline", "ok", ["--camera", "Cam\nera"], "control character"),
    ("camera name too long", "ok", ["--camera", "é" * 128], "255 bytes"),
    ("samples 0", "ok", ["--samples", "0"], "--samples"),
    ("samples past Cycles' limit", "ok", ["--samples", str((1 << 24) + 1)], "--samples"),
    ("resolution one number", "ok", ["--resolution", "1920"], "WIDTHxHEIGHT"),
    ("resolution with shell", "ok", ["--resolution", "64x48;id"], "WIDTHxHEIGHT"),
    ("resolution too large", "ok", ["--resolution", "70000x10"], "1 to 65536 pixels"),
    ("resolution percent 0", "ok", ["--resolution-percent", "0"], "--resolution-percent"),
    ("unknown format", "ok", ["--format", "GIF"], "--format"),
    ("frame step 0", "ok", ["--frame-step", "0"], "--frame-step"),
    ("frame step of a still", "ok", ["--image", "--frame-step", "2"], "needs an animation"),
    ("task minutes 0", "ok", ["--task-minutes", "0"], "--task-minutes"),
    ("task longer than the walltime", "ok", ["--task-minutes", "31"],
     "longer than the walltime (30 min)"),
    # A still split by samples (--split): one frame, 2 to 64 parts, at most the samples.
    ("split an animation", "ok", ["--split", "2"], "--split renders one still"),
    ("split frames", "ok", ["--frames", "1-3", "--split", "2"], "--split renders one still"),
    ("split 1", "ok", ["--image", "--split", "1"], "--split"),
    ("split 65", "ok", ["--image", "--split", "65"], "--split"),
    ("split past --samples", "ok", ["--image", "--split", "8", "--samples", "4"],
     "more parts than --samples 4"),
    ("split past the scene's samples", "ok", ["--image", "--split", "5"],
     "renders 4 samples, fewer than the parts"),
    ("split with a scout", "ok", ["--image", "--split", "2", "--scout"], "--scout"),
    ("another engine", "eevee", [], "Cycles"),
    ("missing texture", "missing", [], "missing asset"),
]


@pytest.mark.parametrize(("case", "kind", "args", "words"), SUBMIT_CASES,
                         ids=[c[0] for c in SUBMIT_CASES])
def test_bad_submit(cli, home, scene, tmp_path, case, kind, args, words):
    files = bad_files(tmp_path / "bad")
    if kind == "ok":
        path = scene("anim6")
    elif kind in ("eevee", "missing"):
        path = scene(kind)
    elif kind == "truncated":
        good = scene("anim6")
        path = good.with_name("truncated.blend")
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    elif kind == "nope":
        path = tmp_path / "nope.blend"
    else:
        path = files[kind]
    result = cli("submit", path, *args)
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0]
    assert result.stdout == ""
    assert nothing_written(home)


@pytest.mark.parametrize("command", [["info"], ["logs"], ["cancel"], ["download"], ["resume"]])
def test_unknown_job_id(cli, home, command):
    result = cli(*command, "2020-01-01-00000000-nothing")
    assert result.code == 2
    assert result.stderr.strip() == ("error: no job '2020-01-01-00000000-nothing'; "
                                     "`braas-globus list` shows your jobs")


def test_unknown_command_and_missing_argument(cli):
    for args in (["render"], ["submit"], ["info"]):
        result = cli(*args)
        assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_json_error_keeps_stdout_clean(cli, tmp_path):
    result = cli("submit", tmp_path / "nope.blend", "--json")
    assert result.code == 2 and result.stdout == ""


def test_presets_lists_the_local_default(cli):
    result = cli("presets", "--json")
    assert result.code == 0
    assert [p["name"] for p in result.json()] == ["local"]


def test_bad_config_file_is_reported(cli, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("local_workers = 0\n")
    result = cli("list")
    assert result.code == 2 and "local_workers" in result.stderr


def test_json_outputs_parse(cli):
    for args in (["list", "--json"], ["presets", "--json"], ["clusters", "--json"]):
        result = cli(*args)
        assert result.code == 0
        json.loads(result.stdout)


def test_an_unexpected_error_is_one_line_and_a_report_file(cli, home, monkeypatch):
    from braas_globus import service

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(service.Service, "list_jobs", broken)
    result = cli("list")
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unexpected error (ZeroDivisionError: a bug)" in lines[0]
    report = Path(lines[0].rsplit(" ", 1)[1])
    assert report.parent == home / "crash" and "Traceback" in report.read_text()
    assert "Traceback" not in result.stderr


def set_frame_range(blend: Path, start: int, end: int) -> None:
    """Write a frame range Blender's UI would clamp, as a hand-edited or hostile file has it."""
    from blender_asset_tracer import blendfile

    bfile = blendfile.BlendFile(blend, mode="r+b")
    try:
        scene = bfile.find_blocks_from_code(b"SC")[0]
        scene.set((b"r", b"sfra"), start)
        scene.set((b"r", b"efra"), end)
    finally:
        bfile.close()


@pytest.mark.parametrize(("start", "end", "words"), [
    (-3, 1, "starts before frame 0"),
    (1, 2000000, "goes past frame 1048574"),
])
def test_a_scenes_own_frame_range_is_checked_like_frames(cli, home, scene, start, end, words):
    blend = scene("anim6")
    set_frame_range(blend, start, end)
    result = cli("submit", blend)
    assert result.code == 2
    assert words in result.stderr and "--frames" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert nothing_written(home)
    assert cli("submit", blend, "--frames", "1", "--wait").code == 0  # --frames still works


CLUSTER_PRESETS = {  # name -> (cluster, partition, account)
    "karolina-exp": ("karolina", "qcpu_exp", "DD-24-1"),  # an hour at most
    "karolina-gpu": ("karolina", "qgpu", "DD-24-1"),  # NVIDIA A100
    "lumi-gpu": ("lumi", "standard-g", "project_465000001"),  # AMD MI250X
}
CLUSTER_CASES = [
    # (id, preset, extra args, words the one line must contain)
    ("walltime over the partition's limit", "karolina-exp", ["--walltime", "120"],
     "walltime_minutes"),
    ("a GPU device on a CPU partition", "karolina-exp", ["--device", "CUDA"],
     "renders with CPU"),
    ("CUDA on AMD GPUs", "lumi-gpu", ["--device", "CUDA"], "HIP or CPU"),
    ("HIP on NVIDIA GPUs", "karolina-gpu", ["--device", "HIP"], "CUDA or OPTIX or CPU"),
    ("one bad centre of two", "karolina-gpu,karolina-exp", ["--walltime", "90"],
     "walltime_minutes"),
]


@pytest.mark.parametrize(("case", "preset", "args", "words"), CLUSTER_CASES,
                         ids=[c[0] for c in CLUSTER_CASES])
def test_bad_submit_to_a_centre(cli, home, scene, case, preset, args, words):
    """A centre's limits are checked before a job, folder, upload or Globus call exists:
    with no Globus login here, any call would fail with a login error instead."""
    from braas_globus.presets import add_preset

    for number, (name, (cluster, partition, account)) in enumerate(CLUSTER_PRESETS.items()):
        add_preset(home, name=name, cluster=cluster, partition=partition, account=account,
                   endpoint_id=f"00000000-0000-0000-0000-00000000001{number}",
                   collection_id=f"00000000-0000-0000-0000-00000000002{number}",
                   remote_dir="/scratch/braas", local_collection_id=f"00000000-0000-0000-"
                   f"0000-00000000003{number}")
    result = cli("submit", scene("anim6"), "--preset", preset, *args)
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert nothing_written(home)
    assert not (home / "staging").exists() or not any((home / "staging").iterdir())


def _submit_fuzz_cases():
    from hypothesis import strategies as st

    text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
    numbers = st.one_of(st.integers(-10**6, 10**6).map(str), text)
    return st.fixed_dictionaries({}, optional={
        "--frames": st.one_of(text, st.from_regex(r"[0-9,:\- ]{1,20}", fullmatch=True)),
        "--project": text, "--email": text, "--walltime": numbers, "--max-jobs": numbers,
        "--retries": numbers, "--device": text, "--mode": text, "--project-root": text})


def test_fuzz_every_submit_option_is_one_line_and_exit_2(cli, home, scene):
    """Whatever the options say, a submit to a preset that does not exist ends in one line
    and exit 2 (the option's rule, or the unknown preset once all else is valid), and
    writes nothing; no input reaches a traceback."""
    from hypothesis import HealthCheck, given, settings

    blend = scene("anim6")

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(options=_submit_fuzz_cases())
    def check(options):
        args = [part for option, value in options.items() for part in (option, value)]
        result = cli("submit", blend, *args, "--preset", "nowhere")
        assert result.code == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert nothing_written(home)

    check()
