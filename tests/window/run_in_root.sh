#!/bin/sh
# Run tests/window/driver.py in Blender with a real window: Xvfb and Debian trixie's Blender
# inside ROOT (made by .ci/window/install.sh), with WORK mounted at /braas-work.
#
#   unshare --mount --propagation private -- sh run_in_root.sh ROOT WORK     (as root)
#
# Called by tests/test_addon_window.py in a mount namespace of its own: every mount below
# ends with it. ROOT's /tmp is a fresh tmpfs, so nothing of one run is left for the next.
# Blender's output goes to WORK/blender.log.
set -eu
root=$1
work=$2

mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/tmp"
mkdir -p "$root/braas-work"
mount --bind "$work" "$root/braas-work"
cp "$(dirname "$0")/driver.py" "$work/driver.py"

# shellcheck disable=SC2016  # the script is for the shell inside the root
exec chroot "$root" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/braas-work/home \
    BRAAS_HOME=/braas-work/braas-home TMPDIR=/tmp sh -eu -c '
    # Xvfb picks a free display and writes its number when it is ready.
    Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp 3>/tmp/display 2>/tmp/xvfb.log &
    xvfb=$!
    trap "kill $xvfb 2>/dev/null || true" EXIT
    tries=0
    until [ -s /tmp/display ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ]; then
            cat /tmp/xvfb.log >&2
            echo "Xvfb did not start in 30 s" >&2
            exit 1
        fi
        sleep 0.1
    done
    # Preferences of their own, factory ones but for the splash: it covers the window, and
    # on a first run it waits for a click. Blender then starts with its factory scene.
    blender -b --factory-startup --python-expr "import bpy
bpy.context.preferences.view.show_splash = False
bpy.ops.wm.save_userpref()" >/braas-work/blender-prefs.log 2>&1
    status=0
    DISPLAY=":$(cat /tmp/display)" blender --python /braas-work/driver.py \
        -- /braas-work >/braas-work/blender.log 2>&1 || status=$?
    cp /tmp/*.crash.txt /braas-work/ 2>/dev/null || true  # what Blender says of a crash
    exit "$status"
'
