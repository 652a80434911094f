"""Drive the add-on in Blender's real window, as a user would, and say what was seen.

    DISPLAY=:N blender --python driver.py -- WORK

Run by tests/window/run_in_root.sh (Xvfb, Debian trixie's Blender 4.3) for
tests/test_addon_window.py, never by hand. WORK holds the add-on zip (``addon.zip``); the
driver writes ``WORK/scene.blend``, screenshots under ``WORK/shots/`` (ImageMagick
``import -window root``: Blender's own screenshot operator is black under Xvfb), and
``WORK/report.json``, then quits Blender.

The steps run on a ``bpy.app.timers`` callback, one at a time, so Blender's event loop
draws and fires the add-on's own timer in between, as it does for a user: nothing here
calls the add-on's timer callback (``results.drain``) itself.
"""

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import bpy

WORK = Path(sys.argv[sys.argv.index("--") + 1])
ADDON = "bl_ext.user_default.braas_globus"
report: dict = {"blender": bpy.app.version_string, "python": sys.version.split()[0],
                "screenshots": [], "steps": []}


def screenshot(name: str):
    """Yield while the pointer moves away from the panels (a tooltip closes), then shoot."""
    window = bpy.context.window_manager.windows[0]
    window.cursor_warp(window.width // 3, 12)  # the status bar: no button, no tooltip
    yield 1.0
    path = WORK / "shots" / f"{len(report['screenshots']) + 1:02d}-{name}.png"
    path.parent.mkdir(exist_ok=True)
    subprocess.run(["import", "-window", "root", str(path)], check=True, timeout=120)
    report["screenshots"].append(path.name)


def step(name: str) -> None:
    report["steps"].append(name)
    print(f"driver: {name}", flush=True)


def properties_editor():
    """The factory layout's Properties editor (its narrow width is what users see first)."""
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type == "PROPERTIES")
    region = next(r for r in area.regions if r.type == "WINDOW")
    return window, area, region


def call(operator, editor=None, **props) -> set:
    window, area, region = editor or properties_editor()
    with bpy.context.temp_override(window=window, area=area, region=region):
        return operator(**props)


def wide_properties_editor():
    """The 3D Viewport turned into a second Properties editor on the Render tab: the wide
    editor, beside the factory's narrow one."""
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type in {"VIEW_3D", "PROPERTIES"}
                and a.width > 600)
    area.type = "PROPERTIES"
    return window, area, next(r for r in area.regions if r.type == "WINDOW")


def scroll_to_the_end(editor) -> None:
    """Scroll a Properties editor to its last panel, where the add-on's panels are."""
    for _ in range(30):
        call(bpy.ops.view2d.scroll_down, editor, page=True)
    editor[1].tag_redraw()


def status():
    return bpy.context.window_manager.braas_globus


def count_draws() -> dict:
    """Count each of the add-on's panels' redraws, through ``Panel.append`` (the way add-ons
    extend a panel's drawing): the counts say which panels the real window drew."""
    drawn: dict = {}
    for name in dir(bpy.types):
        cls = getattr(bpy.types, name, None)
        if not (isinstance(cls, type) and issubclass(cls, bpy.types.Panel)
                and cls.__module__.startswith(ADDON)):
            continue
        drawn[name] = 0

        def counted(self, context, _name=name):
            drawn[_name] += 1

        cls.append(counted)
    return drawn


def wait_for(condition, seconds: float, what: str):
    """Yield until ``condition()`` holds (Blender draws and runs timers meanwhile)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds:.0f} s for {what}")
        yield 0.2


def steps():
    # 1. Install the built zip with Blender's own operator, as Preferences > Get Extensions
    #    > Install from Disk does: Blender installs the zip's wheels itself.
    started = time.monotonic()
    print("driver: installing", flush=True)
    result = call(bpy.ops.extensions.package_install_files, filepath=str(WORK / "addon.zip"),
                  repo="user_default", enable_on_install=True)
    report["install"] = {"result": sorted(result), "seconds": time.monotonic() - started,
                         "enabled": ADDON in bpy.context.preferences.addons}
    addon = sys.modules[ADDON]
    import pydantic_core  # a compiled wheel of the zip: where did Blender install it?

    report["install"]["pydantic_core"] = pydantic_core.__file__
    step("installed")

    # 2. A tiny Cycles animation, saved: the add-on renders the saved file. Debian's Blender
    #    has no OpenImageDenoise, so denoising is off.
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.use_denoising = 4, False
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 3
    print("driver: saving", flush=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(WORK / "scene.blend"))
    print("driver: saved", flush=True)

    # 3. The Render tab of the Properties editor: the add-on's panels draw there.
    drawn = count_draws()
    report["drawn"] = drawn
    _, area, region = properties_editor()
    area.spaces.active.context = "RENDER"
    area.tag_redraw()
    report["properties_width"] = region.width
    yield from wait_for(lambda: drawn.get("RENDER_PT_braas_globus_new_job", 0) > 0, 30,
                        "the New Job panel to be drawn")
    applied: list = []
    apply = addon.results._apply

    def recording(current, message):  # what the add-on's own timer applies, in order
        applied.append(type(message).__name__ if type(message).__name__ != "Failed"
                       else f"Failed: {message}")
        apply(current, message)

    addon.results._apply = recording
    wide = wide_properties_editor()
    yield 0.5  # the new editor's space is made when it first draws
    wide[1].spaces.active.context = "RENDER"
    report["wide_properties_width"] = wide[2].width
    yield 0.5
    for editor in (properties_editor(), wide):
        scroll_to_the_end(editor)
    yield 1.0
    yield from screenshot("render-tab")
    step("render tab")

    # 4. Submit from the New Job panel, then leave it alone: the timer must bring the job
    #    to FINISHED with no click and no refresh.
    form = scene.braas_globus
    form.project, form.mode = "window", "DIRECTORY"
    report["submit"] = sorted(call(bpy.ops.braas_globus.submit))
    seen: list = []

    def finished() -> bool:
        job = status().selected_job()
        if job is not None and (not seen or seen[-1] != [job.state, job.frames_done]):
            seen.append([job.state, job.frames_done])
        return job is not None and job.state in {"FINISHED", "FAILED", "CANCELED"}

    yield from wait_for(finished, 300, "the job to end")
    job = status().selected_job()
    report["job"] = {"name": job.name, "state": job.state, "frames": job.frames_done,
                     "frame_count": job.frame_count, "folder": job.folder,
                     "bar": addon.panels.job_bar_text(job), "message": status().message}
    report["states_seen"] = seen
    yield from wait_for(lambda: not addon.results.pending(), 30, "the worker to go idle")
    yield 1.5  # a redraw or two after the last message
    report["applied"] = applied
    report["timer_registered"] = bpy.app.timers.is_registered(addon.results.drain)
    yield from screenshot("job-finished")
    step("job finished")

    # 5. Preview: the contact sheet in an Image Editor.
    call(bpy.ops.braas_globus.preview_job)
    yield from wait_for(lambda: not addon.results.pending() and any(
        i.filepath.endswith("contact-sheet.png") for i in bpy.data.images), 180,
        "the contact sheet")
    sheet = next(i for i in bpy.data.images if i.filepath.endswith("contact-sheet.png"))
    report["preview"] = {"sheet": list(sheet.size), "message": status().message,
                         "image_editors": sum(a.type == "IMAGE_EDITOR" for w in
                                              bpy.context.window_manager.windows
                                              for a in w.screen.areas)}
    yield 1.5
    yield from screenshot("preview")
    step("preview")

    # 6. Disable: the add-on's classes and its timer go.
    import addon_utils

    addon_utils.disable(ADDON, default_set=True)
    report["after_disable"] = {
        "panels": [n for n in drawn if hasattr(bpy.types, n)],
        "timer_registered": bpy.app.timers.is_registered(addon.results.drain)}
    step("disabled")


SEQUENCE = steps()


def run_steps():
    try:
        delay = next(SEQUENCE)
    except StopIteration:
        finish(0)
        return None
    except BaseException:
        report["error"] = traceback.format_exc()
        finish(1)
        return None
    return delay


def finish(code: int) -> None:
    (WORK / "report.json").write_text(json.dumps(report, indent=1, default=str))
    sys.stdout.flush()
    os._exit(code)  # the add-on's worker thread would keep a clean quit waiting


bpy.app.timers.register(run_steps, first_interval=1.0)
