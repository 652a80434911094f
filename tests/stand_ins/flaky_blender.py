"""A STAND-IN for a crashing Blender executable, for tests of retries and failures only.

It is called as the `blender` executable would be (``-b --factory-startup ... -P
script -- args``), records its argv, then runs the REAL render script with the
real Blender (PyPI bpy) and injects the failure a test asks for, through
environment variables:

- FLAKY_LOG: append each call's argv (JSON) to this file;
- FLAKY_CRASH_AFTER=N and FLAKY_CRASHES=K: the first K calls are killed after N
  frames, with "Error: simulated crash (test stand-in)" (state in FLAKY_STATE);
- FLAKY_DROP_FRAME=F: frame F is never rendered, with "Error: out of memory
  rendering frame F (test stand-in)".
"""

import json
import os
import subprocess
import sys

from braas_globus.worker.frames import format_frames, parse_frames


def main() -> int:
    argv = sys.argv[1:]
    with open(os.environ["FLAKY_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")  # every call, packing included
    script = argv[argv.index("-P") + 1]
    script_args = argv[argv.index("--") + 1 :]
    if not script.endswith("blender_render.py"):  # packing and the like: run as they are
        return subprocess.call([sys.executable, script, "--", *script_args])
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

    real = subprocess.Popen([sys.executable, script, "--", *script_args],
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
