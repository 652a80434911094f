"""The Blender add-on (addon/), under real Blender: PyPI bpy in background mode.

Every Blender scenario runs in its own Python process (tests/addon_scenarios.py): bpy
cannot be started twice in one process. The add-on is loaded as Blender loads an
extension: from ``extensions/user_default`` of a temporary BLENDER_USER_RESOURCES, either
the source folder linked there, or the built zip installed by Blender's own operator.
bpy.app.timers do not fire in PyPI bpy's background mode; the scenarios call the add-on's
timer callback (``results.drain``) themselves, as Blender's event loop would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from braas_globus.blender_scripts import MAKE_DEMO_SCENE
from tests import test_auth as globus_fakes
from tests.conftest import TINY, build_scene, load_module

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = Path(__file__).resolve().parent / "addon_scenarios.py"
ADDON_SOURCE = REPO / "addon" / "braas_globus_addon"
NEWEST = Path(sys.executable)  # .venv: bpy 5.0.1; in .ci/run's 3.13 lane, .venv-py3.13: bpy 5.1+
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"  # the Python of NEWEST's Blender
OLDEST = REPO / ".venv-blender-4.2" / "bin" / "python"  # bpy 4.2.x LTS, made by .ci/run




# --- running scenarios ------------------------------------------------------------------------


def blender_env(tmp_path: Path, link_source: bool = True, **extra: str) -> dict:
    """A private BRAAS_HOME and Blender user folder; the source add-on linked in."""
    resources = tmp_path / "blender-user"
    repo_dir = resources / "extensions" / "user_default"
    repo_dir.mkdir(parents=True, exist_ok=True)
    if link_source:
        (repo_dir / "braas_globus").symlink_to(ADDON_SOURCE, target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("BRAAS_BLENDER", "BRAAS_GLOBUS_CLIENT_ID", "SSH_TTY",
                        "SSH_CONNECTION", "DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH")}
    env.update(BRAAS_HOME=str(tmp_path / "braas-home"), BLENDER_USER_RESOURCES=str(resources),
               **extra)
    return env


def run_scenario(name: str, args: dict, env: dict, python: Path = NEWEST,
                 timeout: float = 240, python_flags: tuple[str, ...] = ()) -> dict:
    started = time.monotonic()
    done = subprocess.run([str(python), *python_flags, str(SCENARIOS), name, json.dumps(args)],
                          capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=REPO, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"scenario {name} failed:\n{output[-6000:]}"
    line = next(line for line in reversed(done.stdout.splitlines())
                if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    print(f"scenario {name} with {python}: {time.monotonic() - started:.1f} s")
    return result


@pytest.fixture
def no_runners_left(tmp_path):
    yield
    from tests.conftest import stop_runners

    stop_runners(tmp_path / "braas-home")


# --- the worker thread, without Blender --------------------------------------------------------


def test_worker_abort_stops_the_running_operation_and_drops_the_waiting_ones():
    worker_module = load_module("braas_addon_worker", ADDON_SOURCE / "worker.py")
    from braas_globus.errors import UsageError

    entered = []

    def slow(ctx):
        entered.append(time.monotonic())
        while True:  # a long operation that reports progress, as the service does
            ctx.progress(1, 10)
            time.sleep(0.01)

    def quick(ctx, value):
        return value * 2

    def refuses(ctx):
        raise UsageError("project: the project name is empty")

    worker = worker_module.Worker({"slow": ("Slow", slow), "quick": ("Quick", quick),
                                   "refuses": ("Refuses", refuses)})
    try:
        assert worker.abort() is False  # nothing to abort
        worker.request("slow")
        worker.request("quick", value=1)
        deadline = time.monotonic() + 10
        while not entered and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.busy() and worker.pending("quick")
        assert worker.abort() is True
        deadline = time.monotonic() + 10
        while worker.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not worker.pending()
        worker.request("quick", value=21)
        worker.request("refuses")
        while worker.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        messages = worker.messages()
    finally:
        worker.stop(timeout=5)
    kinds = [(type(m).__name__, getattr(m, "operation", None)) for m in messages]
    assert ("Stopped", "slow") in kinds  # the running one stopped at its next report
    assert ("Stopped", "quick") in kinds  # the waiting one never ran
    finished = [m for m in messages if type(m).__name__ == "Finished"]
    assert [(m.operation, m.result) for m in finished] == [("quick", 42)]
    failed = [m for m in messages if type(m).__name__ == "Failed"]
    assert [m.message for m in failed] == ["project: the project name is empty"]
    assert not worker.alive


def test_the_local_backend_renders_with_the_blender_the_addon_runs_in(tmp_path, monkeypatch):
    worker_module = load_module("braas_addon_worker_env", ADDON_SOURCE / "worker.py")
    blender = tmp_path / "blender"
    blender.write_text("#!/bin/sh\n")
    monkeypatch.setenv("BRAAS_BLENDER", "")  # remembered: put back as it was afterwards
    monkeypatch.delenv("BRAAS_BLENDER")
    worker_module.blender_for_service("")  # PyPI bpy: no executable
    assert "BRAAS_BLENDER" not in os.environ
    worker_module.blender_for_service(str(blender))  # not executable
    assert "BRAAS_BLENDER" not in os.environ
    blender.chmod(0o755)
    worker_module.blender_for_service(str(blender))
    assert os.environ["BRAAS_BLENDER"] == str(blender)
    monkeypatch.setenv("BRAAS_BLENDER", "/opt/my/blender")  # the user's own choice stays
    worker_module.blender_for_service(str(blender))
    assert os.environ["BRAAS_BLENDER"] == "/opt/my/blender"


# --- register and unregister, newest and oldest Blender ----------------------------------------


@pytest.mark.parametrize("python", [NEWEST, OLDEST], ids=["bpy-newest", "bpy-4.2"])
def test_extension_registers_and_unregisters_cleanly_twice(tmp_path, python):
    if not python.exists():
        pytest.skip(f"{python} is missing: `bash .ci/run` creates the Blender 4.2 venv")
    result = run_scenario("register", {}, blender_env(tmp_path), python=python)
    print("Blender", result["blender"])
    if python == OLDEST:
        assert result["blender"].startswith("4.2")
    for round_ in result["rounds"]:
        assert all(round_["present"].values()), round_
        assert round_["timer"]
        assert round_["presets"] == ["local"]
        assert not any(round_["after"].values()), round_
        assert not round_["timer_after"]
        assert not round_["worker_alive_after"]
        assert round_["threads_after"] == ["MainThread"]
        # Every panel, list row and the preferences drew with this Blender's UILayout API.
        drawn = round_["drawn"]
        assert drawn["problems"] == [] and drawn["calls"] > 50, drawn["problems"]
        assert {"braas_globus.submit", "braas_globus.abort", "braas_globus.login",
                "braas_globus.logout", "braas_globus.test_preset", "braas_globus.add_preset",
                "braas_globus.find_working_dir",
                "braas_globus.refresh_jobs", "braas_globus.cancel_job",
                "braas_globus.download_job", "braas_globus.open_folder",
                "braas_globus.job_info"} <= set(drawn["operators"])
        assert "Not signed in" in drawn["labels"] and "Idle" in drawn["labels"]
        unfolded = round_["drawn_settings"]  # the render settings, one property a line
        assert unfolded["problems"] == [], unfolded["problems"]
        assert unfolded["calls"] >= drawn["calls"] + 10
        assert round_["logout_enabled"] is False  # nothing to log out of
        # The lists' headings, one a column; messages as wide as the editor.
        labels = drawn["labels"]
        for headings in (("Preset", "Account", "Cluster", "Partition", "Device"),
                         ("ID", "Project", "Cluster", "State")):
            start = labels.index(headings[0])
            assert tuple(labels[start:start + len(headings)]) == headings
        narrow, wide = round_["wrapping"]["300"], round_["wrapping"]["900"]
        assert narrow["chars"] < wide["chars"]
        for wrapped in (narrow, wide):
            assert max(map(len, wrapped["lines"])) <= wrapped["chars"]
            assert " ".join(wrapped["lines"]) == " ".join(["word"] * 60)
        assert len(narrow["lines"]) > len(wide["lines"])
        engines = round_["engines"]
        assert engines.pop("CYCLES") == {"panels": True, "hint": []}
        for engine, shown in engines.items():  # EEVEE, Workbench: one line says why
            assert shown["panels"] is False, engine
            assert " ".join(shown["hint"]).startswith("Rendering here needs Cycles"), engine


# --- the New Job form checks input as the CLI does ----------------------------------------------

FORM_CASES = {
    # case: (form values in the add-on, the same input as CLI options)
    "project_too_long": ({"project": "a" * 26}, ["--project", "a" * 26]),
    "project_bad_characters": ({"project": "shot#1"}, ["--project", "shot#1"]),
    "bad_email": ({"email": "not-an-email"}, ["--email", "not-an-email"]),
    "bad_frame_spec": ({"frames_from": "SPEC", "frames": "1-x"}, ["--frames", "1-x"]),
    "reversed_range": ({"frames_from": "RANGE", "frame_start": 6, "frame_end": 1},
                       ["--frames", "6-1"]),
    "bad_preset_name": ({"preset": "Bad Preset"}, ["--preset", "Bad Preset"]),
    "resolution_one_side": ({"resolution_x": 64}, ["--resolution", "64x0"]),
    "task_longer_than_walltime": ({"resolution_x": 0, "task_minutes": 45, "walltime": 30},
                                  ["--task-minutes", "45", "--walltime", "30"]),
    "split_past_samples": ({"render_type": "IMAGE", "split": 8, "samples": 4},
                           ["--image", "--split", "8", "--samples", "4"]),
}


def test_form_and_service_checks_say_what_the_cli_says(tmp_path, scene, cli, no_runners_left):
    anim = scene("anim6")
    eevee, missing = scene("eevee"), scene("missing")
    expected = {}
    for case, (_, options) in FORM_CASES.items():
        result = cli("submit", anim, "--mode", "directory", *options)
        assert result.code == 2, (case, result.stderr)
        expected[case] = result.stderr.strip().removeprefix("error: ")
    for case, args in {"unknown_preset": [anim, "--preset", "nope"], "not_cycles": [eevee],
                       "missing_texture": [missing]}.items():
        result = cli("submit", *args, "--mode", "directory", "--project", "check")
        assert result.code == 2, (case, result.stderr)
        expected[case] = result.stderr.strip().removeprefix("error: ")

    result = run_scenario("validate", {
        "scene": str(anim),
        "cases": {case: values for case, (values, _) in FORM_CASES.items()},
        "service_cases": {"unknown_preset": str(anim), "not_cycles": str(eevee),
                          "missing_texture": str(missing)},
        "service_presets": {"unknown_preset": "nope"},
    }, blender_env(tmp_path))

    for case in FORM_CASES:
        seen = result["cases"][case]
        assert seen["panel"] == expected[case], case  # shown in the panel before submitting
        assert seen["reported"] == expected[case], case  # and by the operator
        assert seen["result"] == ["CANCELLED"] and seen["is_error"], case
        assert seen["status"] == expected[case], case
    for case in ("unknown_preset", "not_cycles", "missing_texture"):
        # In the panel, and in Blender's Info area too (the panel may be closed).
        assert result["cases"][case] == {"status": expected[case], "is_error": True,
                                         "info_area": True}, case
    assert "missing asset" in expected["missing_texture"]
    assert "Cycles" in expected["not_cycles"]
    assert result["jobs"] == [] and result["job_folders"] == []  # nothing was written


# --- a job on the local backend, driven from the add-on -----------------------------------------


def test_local_job_from_the_addon(tmp_path, scene, no_runners_left):
    storage = tmp_path / "job-storage"
    # Long enough to cancel while it renders: 40 frames of about 0.3 s each.
    long_scene = build_scene(tmp_path / "long", "--frames", "40", "--samples", "64",
                             "--width", "160", "--height", "120")
    result = run_scenario("local_job", {
        "scene": str(scene("anim6")), "long_scene": str(long_scene),
        "storage": str(storage)}, blender_env(tmp_path))

    assert result["submit_call_seconds"] < 1.0  # the operator hands the work over
    assert result["project"] == "addon_test" and result["cluster"] == "this machine"
    assert result["frames"] == [6, 6]
    assert any(step.startswith("tracing") for step in result["steps"])
    assert any(step.startswith("staging") for step in result["steps"])
    assert result["progress_reports"] >= 1  # the status bar moved
    # The job's state moved on by itself (no refresh was asked for) while frames arrived.
    assert result["refreshes"] >= 2
    assert result["states"][0][0] in ("QUEUED", "RUNNING")
    assert result["states"][-1] == ["FINISHED", 6], result["states"]
    # ... and, on the longer job, while its frames arrived.
    # Running, with frames done: the Status bar says the time left, state first.
    bar = result["running_bar"]
    assert re.fullmatch(r"RUNNING, \d+/40 frames, about \d+ (s|min) left", bar), bar
    running = result["running_states"]
    assert len({done for state, done in running if state == "RUNNING"}) >= 2, running
    # The Status message followed the job from "submitted" to its end.
    assert result["submit_message"] == f"{result['job']}: FINISHED, 6/6 frames"

    preview = result["preview"]
    assert preview["frame"] == 6 and preview["file"].endswith("000006.png")
    assert preview["size"] == [64, 48]  # the frame file was loaded as the preview
    assert "frames 6/6 done, 0 failed" in result["info"]

    # Preview: the contact sheet and the video, loaded as Blender images (in background mode
    # there is no Image Editor to show them in: the message says where they are).
    previewed = result["previewed"]
    assert previewed["message"].startswith(f"preview of {result['job']}: contact sheet as "
                                           "image 'contact-sheet.png'"), previewed
    assert previewed["sheet"] is not None and previewed["sheet"][0] > previewed["sheet"][1]
    assert previewed["video"] == ["MOVIE", 6]
    downloaded = storage / result["job"]
    assert result["download_message"] == f"6/6 frames in {downloaded / 'out'}"
    assert sorted(p.name for p in (downloaded / "out").glob("*.png")) == [
        f"{n:06d}.png" for n in range(1, 7)]
    assert result["output_folder"] == str(downloaded / "out")

    drawn = result["drawn"]  # the panels as they are now, with a job and its last frame
    assert drawn["problems"] == [], drawn["problems"]
    assert {"factor": 1.0, "type": "BAR",
            "text": "FINISHED, 6/6 frames"} in drawn["progress"]
    assert result["job"] in drawn["labels"]  # the job's id on a line of its own
    assert len(drawn["icons"]) == 1 and drawn["icons"][0]["scale"] > 1  # the preview
    assert any(label.startswith("frames 6/6 done, 0 failed, in ") for label in drawn["labels"])
    assert "6/6 frames in" in drawn["labels"] and str(downloaded / "out") in drawn["labels"]
    assert drawn["shown_when_filtered"] == 1

    cancel = result["cancel"]
    assert cancel["state"] == "CANCELED"
    assert 1 <= cancel["frames_at_cancel"] < cancel["frame_count"] == 40
    # Nothing of the canceled job rendered after the cancel (one frame may have been on disk
    # a moment before its record).
    assert len(cancel["files_after"]) <= len(cancel["files_at_cancel"]) + 1
    assert len(cancel["files_after"]) < 40
    assert [state for _, state in result["jobs"]] == ["FINISHED", "CANCELED"]


def test_abort_stops_a_submit_while_it_packs(tmp_path, scene, no_runners_left):
    result = run_scenario("abort", {"scene": str(scene("anim6"))}, blender_env(tmp_path))
    assert result["message"] == "Submitting: aborted" and not result["is_error"]
    assert result["jobs"] == [] and result["job_folders"] == []  # taken back out whole
    assert result["stopped_after"] < 30
    assert result["abort_idle"] == ["FINISHED"]


# --- Globus login, presets, and no secrets in Blender's files ----------------------------------


def test_login_logout_presets_and_no_secret_in_blender_files(tmp_path, cli):
    fakes = {"client_id": globus_fakes.CLIENT_ID, "identity": globus_fakes.IDENTITY,
             "code": globus_fakes.AUTH_CODE, "id_token": globus_fakes.ID_TOKEN,
             "token_url": globus_fakes.TOKEN_URL, "revoke_url": globus_fakes.REVOKE_URL,
             "code_exchange": globus_fakes.code_exchange_body(),
             "secrets": globus_fakes.SECRETS}
    endpoint, collection, mine = (str(uuid.UUID(int=n)) for n in (11, 12, 13))
    preset = {"new_name": "karolina-gpu", "new_cluster": "karolina", "new_partition": "qgpu",
              "new_account": "DD-24-1", "new_endpoint": endpoint, "new_collection": collection,
              "new_remote_dir": "/scratch/project/dd-24-1/me", "new_local_collection": mine}
    bad_account = "dd 24;rm"
    refused = cli("presets", "add", "second", "--cluster", "karolina", "--partition", "qgpu",
                  "--account", bad_account, "--endpoint", endpoint, "--collection", collection,
                  "--remote-dir", "/scratch/project/dd-24-1/me", "--local-collection", mine)
    assert refused.code == 2

    env = blender_env(tmp_path, BRAAS_GLOBUS_CLIENT_ID=globus_fakes.CLIENT_ID, DISPLAY=":0")
    result = run_scenario("globus", {"fake": fakes, "preset": preset,
                                     "bad_account": bad_account, "tmp": str(tmp_path)}, env)

    assert result["before"]["signed_in"] is False
    assert "not logged in" in result["before"]["note"]
    aborted = result["aborted_login"]
    assert aborted["message"] == "Logging in to Globus: aborted" and not aborted["signed_in"]
    assert aborted["seconds"] < 10  # the waiting login server was told at once
    assert result["login"] == {"message": "logged in to Globus as ada@example.org "
                                          "(Ada Lovelace)",
                               "identity": "ada@example.org (Ada Lovelace)",
                               "signed_in": True}
    assert result["whoami"] == "ada@example.org (Ada Lovelace)"

    assert len(result["saved_files"]) == 2  # the .blend and userpref.blend
    assert result["secrets_found"] == []
    assert result["identity_in_blend"] is False  # WindowManager status is never saved
    assert result["control_in_blend"] is True  # the same check finds a value a scene holds
    home = tmp_path / "braas-home"
    assert result["token_file_before_logout"]  # the tokens were in braas-globus's storage
    assert result["logout"]["signed_in"] is False and not result["logout"]["token_file"]
    assert result["logout"]["message"] == "logged out of Globus"
    leftovers = [p for p in home.rglob("*") if p.is_file() and any(
        s.encode() in p.read_bytes() for s in globus_fakes.SECRETS)]
    assert leftovers == []

    added = result["added"]
    assert not added["is_error"] and added["message"].startswith("added preset karolina-gpu")
    assert ["karolina-gpu", "karolina", "qgpu", "DD-24-1", "CUDA"] in added["rows"]
    assert result["bad_preset"] == {"message": refused.stderr.strip().removeprefix("error: "),
                                    "is_error": True}
    assert result["test_local"]["message"] == "preset local is ready"
    assert result["test_local"]["result"].startswith("ok  blender: renders on this machine")
    assert result["test_cluster"]["is_error"]
    assert result["test_cluster"]["message"].startswith("preset karolina-gpu is not ready")
    assert "log" in result["test_cluster"]["message"]  # logged out: it says to log in
    assert result["removed"] == {"message": "removed preset karolina-gpu", "rows": ["local"]}


# --- the built zip ----------------------------------------------------------------------------


PY313 = REPO / ".venv-py3.13" / "bin" / "python"  # bpy 5.1+ on Python 3.13, when present


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory):
    """The Linux x86-64 zip for a Python (tests/test_addon_build.py checks them all)."""
    from tests.test_addon_build import built_zips

    return lambda python: built_zips(tmp_path_factory, [(python, "linux-x64")])[
        python, "linux-x64"]


@pytest.mark.parametrize("python,zip_python", [(NEWEST, RUNNING), (OLDEST, "3.11"),
                                               (PY313, "3.13")],
                         ids=["bpy-newest", "bpy-4.2", "bpy-5.1+"])
def test_built_zip_installs_and_renders_with_its_own_wheels(tmp_path, built_zip, python,
                                                            zip_python, no_runners_left):
    if python == PY313 and PY313.absolute() == NEWEST.absolute():
        pytest.skip("the same Blender as bpy-newest (this run is in .venv-py3.13)")
    if not python.exists():
        pytest.skip(f"{python} is missing: `bash .ci/run` creates the Blender 4.2 venv"
                    if python == OLDEST else
                    f"{python} is missing: it is a Python 3.13 venv with bpy 5.1 or newer")
    # Blender's Python has bpy and what bpy needs, nothing of this project: run -S (no
    # site-packages) with a folder that holds only bpy and its dependencies.
    done = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)
    site = Path(done.stdout.strip())
    view = tmp_path / "bpy-only"
    view.mkdir()
    for name in ("bpy", "numpy", "numpy.libs", "zstandard"):
        if (site / name).exists():
            (view / name).symlink_to(site / name)
    env = blender_env(tmp_path, link_source=False, BRAAS_TEST_BPY_VIEW=str(view))
    # A scene this Blender can read (Blender 4.2 does not read files of Blender 5).
    blend = tmp_path / "scene" / "scene.blend"
    subprocess.run([str(python), str(MAKE_DEMO_SCENE), "--", "--out", str(blend), *TINY,
                    "--frames", "1"], check=True, capture_output=True)
    result = run_scenario("installed", {"zip": str(built_zip(zip_python)), "scene": str(blend)},
                          env, python=python, python_flags=("-S",))
    local = str(tmp_path / "blender-user" / "extensions" / ".local")
    assert result["install"] == ["FINISHED"] and result["enabled"]
    assert result["braas_globus"].startswith(local), result["braas_globus"]
    assert result["pydantic_core"].startswith(local)  # a compiled wheel from the zip
    assert all(result["present"].values())
    assert result["job"]["state"] == "FINISHED", result["job"]
    assert result["job"]["frames"] == [1, 1]
    assert not any(result["after"].values())
