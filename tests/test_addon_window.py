"""The add-on in Blender's real window: install, Render tab, submit, FINISHED, preview.

PyPI's bpy has no window and its timers never fire, so the other add-on tests call the
add-on's timer themselves. Here Debian trixie's Blender 4.3 (Python 3.13) runs with its UI
on Xvfb, inside the root that ``.ci/window/install.sh`` makes, and ``tests/window/driver.py``
acts as a user: it installs the built zip with Blender's own operator, opens the Render tab
(the factory layout's narrow Properties editor, and a wide one), submits a local job from
the New Job panel and then only waits: the add-on's own timer must bring the job to
FINISHED. The screenshots go to ``artifacts/window/`` (``$BRAAS_ARTIFACTS/window``) for a
person to look at; the test checks what it can without reading pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import load_module

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("BRAAS_WINDOW_ROOT",
                           "/var/cache/braas-globus/blender-window/trixie"))
ARTIFACTS = Path(os.environ.get("BRAAS_ARTIFACTS", REPO / "artifacts")) / "window"
RUNNER = REPO / "tests" / "window" / "run_in_root.sh"
PANELS = ("RENDER_PT_braas_globus", "RENDER_PT_braas_globus_status",
          "RENDER_PT_braas_globus_new_job", "RENDER_PT_braas_globus_jobs")


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the real-window Blender runs in a chroot: Linux and root only"
    if not (ROOT / ".braas-ready").is_file():
        return (f"no Blender window root at {ROOT}: run `bash .ci/window/install.sh` (as root; "
                "about 2 minutes, 1.4 GB) or set BRAAS_WINDOW_ROOT")
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


@pytest.fixture(scope="module")
def window_run(tmp_path_factory):
    """One driver run: its report, the work folder, and how long it took."""
    work = tmp_path_factory.mktemp("window")
    build = load_module("braas_addon_build_window", REPO / "addon" / "build.py")
    # The zip for a distribution's Blender on Python 3.13 (Debian's 4.3), as a user builds it.
    try:
        (zip_path,) = build.build(work / "dist", ["linux-x64"], ["3.13"], "4.2.0")
    except build.BuildError as err:
        if "`pip " in str(err):
            pytest.skip(f"the wheels could not be fetched from PyPI: {err}")
        raise
    shutil.copy2(zip_path, work / "addon.zip")
    started = time.monotonic()
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", str(RUNNER), str(ROOT),
         str(work)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        output, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    seconds = time.monotonic() - started
    # The screenshots and logs, kept whatever happened.
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    for path in [*work.glob("shots/*.png"), *work.glob("*.log"), *work.glob("*.txt"),
                 *work.glob("report.json")]:
        shutil.copy2(path, ARTIFACTS / path.name)
    log = (work / "blender.log").read_text(errors="replace") if (work / "blender.log").exists() \
        else ""
    report_file = work / "report.json"
    assert report_file.exists(), (f"the driver wrote no report (exit {process.returncode}, "
                                  f"{seconds:.0f} s):\n{output}\n{log[-4000:]}")
    report = json.loads(report_file.read_text())
    assert "error" not in report, f"{report['error']}\n{log[-4000:]}"
    assert process.returncode == 0, f"exit {process.returncode}:\n{output}\n{log[-4000:]}"
    print(f"real-window run: {seconds:.1f} s, Blender {report['blender']} (Python "
          f"{report['python']}); screenshots in {ARTIFACTS}")
    return report, work


def test_blenders_own_operator_installs_the_zip_and_its_wheels(window_run):
    report, work = window_run
    assert report["blender"].startswith("4.") and report["python"].startswith("3.13")
    assert report["install"]["result"] == ["FINISHED"] and report["install"]["enabled"]
    installed = work / "home" / ".config" / "blender"
    assert list(installed.glob("*/extensions/user_default/braas_globus/__init__.py"))
    # Blender put the zip's wheels (pydantic's compiled core among them) in its own site
    # (and took them away again when the add-on was disabled at the end).
    assert "/extensions/.local/lib/python3.13/site-packages/pydantic_core/" in \
        report["install"]["pydantic_core"]


def test_the_real_window_draws_every_panel_in_narrow_and_wide_editors(window_run):
    report, _ = window_run
    drawn = report["drawn"]
    for panel in PANELS:
        assert drawn.get(panel, 0) > 0, (panel, drawn)
    assert drawn["RENDER_PT_braas_globus_needs_cycles"] == 0  # a Cycles scene: no hint
    # The factory layout's Properties editor is narrow; the wide one is several times wider.
    assert 150 < report["properties_width"] < 450 < report["wide_properties_width"]


def test_a_job_submitted_from_new_job_reaches_finished_with_no_input(window_run):
    report, work = window_run
    job = report["job"]
    assert report["submit"] == ["FINISHED"]
    assert job["state"] == "FINISHED" and job["frames"] == job["frame_count"] == 3, job
    assert job["bar"] == "FINISHED, 3/3 frames"
    assert job["message"] == f"{job['name']}: FINISHED, 3/3 frames"  # Status follows the job
    # The add-on's own timer applied the worker's messages: the driver never called it.
    assert report["applied"].count("Progress") >= 1 and "Step" in report["applied"]
    assert report["states_seen"][-1] == ["FINISHED", 3]
    assert report["timer_registered"]
    # The frames are real: three 64x48 images in the job's out/ folder.
    from PIL import Image

    folder = work / job["folder"].removeprefix("/braas-work/")
    frames = sorted((folder / "out").glob("*.png"))
    assert len(frames) == 3
    for frame in frames:
        with Image.open(frame) as image:
            assert image.size == (64, 48)


def test_preview_shows_the_contact_sheet_in_an_image_editor(window_run):
    report, _ = window_run
    preview = report["preview"]
    assert preview["image_editors"] >= 1
    assert preview["sheet"][0] > 0 and preview["sheet"][1] > 0
    assert "contact sheet in an Image Editor" in preview["message"]


def test_disabling_removes_the_panels_and_the_timer(window_run):
    report, _ = window_run
    assert report["after_disable"] == {"panels": [], "timer_registered": False}


def test_screenshots_are_kept_and_show_a_drawn_window(window_run):
    report, _ = window_run
    from PIL import Image

    assert report["screenshots"] == ["01-render-tab.png", "02-job-finished.png",
                                     "03-preview.png"]
    for name in report["screenshots"]:
        with Image.open(ARTIFACTS / name) as shot:
            assert shot.size == (1600, 1000)
            # Not one flat colour (Blender's own screenshot operator is black under Xvfb).
            assert len(shot.convert("L").getcolors(maxcolors=1 << 16) or range(999)) > 50
