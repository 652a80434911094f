"""A STAND-IN for a crashing Blender executable, for tests of retries and failures only.

It is called as the `blender` executable would be (``-b --factory-startup ... -P
script -- args``), records its argv, then runs the REAL render script with the
real Blender (PyPI bpy) and injects the failure a test asks for, through
environment variables:

- FLAKY_LOG: append each call's argv (JSON) to this file;
- FLAKY_CRASH_AFTER=N and FLAKY_CRASHES=K: the first K calls are killed after N
  frames, with "Error: simulated crash (test stand-in)" (state in FLAKY_STATE);
- FLAKY_DROP_FRAME=F: frame F is never rendered, with "Error: out of memory
  rendering frame F (test stand-in)";
- FLAKY_FAIL_FRAME=F: inside Blender, rendering frame F raises (as a failed denoise
  does), and every later frame of that Blender process comes out fully transparent in
  no time, as seen with a persistent-data Blender after an error;
- FLAKY_FAIL_MERGE=1: merging a split still's parts (merge_parts.py) fails, with
  "Error: simulated merge failure (test stand-in)";
- FLAKY_NO_DENOISER=1: this Blender says it was built without OpenImageDenoise
  (``_cycles.with_openimagedenoise``), as Debian's own Blender package is.
"""

import json
import os
import subprocess
import sys

# Runs the real render script inside the real bpy, with the faults asked for injected.
IN_BLENDER = """
import os, runpy, sys
import bpy
script, sys.argv = sys.argv[1], sys.argv[1:]
if os.environ.get("FLAKY_NO_DENOISER"):
    import _cycles
    _cycles.with_openimagedenoise = False
if os.environ.get("FLAKY_FAIL_FRAME"):
    real_render, broken = bpy.ops.render.render, []
    def render(*args, **kwargs):
        scene = bpy.context.scene
        if scene.frame_current == int(os.environ["FLAKY_FAIL_FRAME"]):
            broken.append(True)
            raise RuntimeError("Error: failed to denoise (test stand-in)")
        if broken:  # the broken state: nothing drawn, alpha 0
            scene.render.film_transparent = True
            for obj in scene.objects:
                obj.hide_render = True
            scene.cycles.samples = 1
        return real_render(*args, **kwargs)
    patched = bpy.ops.render  # bpy.ops makes its submodules on lookup: keep this one
    patched.render = render
    bpy.ops.render = patched
runpy.run_path(script, run_name="__main__")
"""

from braas_globus.worker.frames import format_frames, parse_frames


def main() -> int:
    argv = sys.argv[1:]
    with open(os.environ["FLAKY_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")  # every call, packing included
    script = argv[argv.index("-P") + 1]
    script_args = argv[argv.index("--") + 1 :]
    if script.endswith("merge_parts.py") and os.environ.get("FLAKY_FAIL_MERGE"):
        print("Error: simulated merge failure (test stand-in)", flush=True)
        return 1
    if not script.endswith("blender_render.py"):  # packing and the like: run as they are
        return subprocess.call([sys.executable, "-c", IN_BLENDER, script, "--", *script_args])
    drop = os.environ.get("FLAKY_DROP_FRAME")
    if drop is not None:
        at = script_args.index("--frames") + 1
        kept = [f for f in parse_frames(script_args[at]) if f != int(drop)]
        print(f"Error: out of memory rendering frame {drop} (test stand-in)", flush=True)
        if not kept:
            return 1
        script_args[at] = format_frames(kept)

    crash_after = None
    state = os.environ.get("FLAKY_STATE")
    if state and os.environ.get("FLAKY_CRASH_AFTER"):
        calls = int(open(state).read()) if os.path.exists(state) else 0
        with open(state, "w") as stream:
            stream.write(str(calls + 1))
        if calls < int(os.environ.get("FLAKY_CRASHES", "1")):
            crash_after = int(os.environ["FLAKY_CRASH_AFTER"])

    real = subprocess.Popen([sys.executable, "-c", IN_BLENDER, script, "--", *script_args],
                            stdout=subprocess.PIPE, text=True)
    done = 0
    for line in real.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("BRAAS_FRAME ") and '"done"' in line:
            done += 1
            if crash_after is not None and done >= crash_after:
                real.kill()
                real.wait()
                print("Error: simulated crash (test stand-in)", flush=True)
                return 1
    code = real.wait()
    return 1 if drop is not None else code


if __name__ == "__main__":
    sys.exit(main())
