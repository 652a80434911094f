"""The render image's fixed layout: where its recipe lies, the paths inside it, its labels,
and the values a build takes.

The recipe is ``container/Apptainer.def`` with its checksum table
``container/blender-sha256.txt`` and download script ``container/fetch_blender.sh``; the
image holds the worker code under ``/opt/braas/worker`` and runs ``render_task.py`` there.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = REPO_ROOT / "container" / "Apptainer.def"
CHECKSUMS_NAME = "blender-sha256.txt"
FETCH_SCRIPT_NAME = "fetch_blender.sh"
WORKER_SOURCE = "braas_globus/worker"  # relative to the checkout, as %files names it
IMAGE_WORKER_DIR = "/opt/braas/worker"
ENTRY_POINT = f"{IMAGE_WORKER_DIR}/render_task.py"
IMAGE_CHECKSUMS = f"/opt/braas/{CHECKSUMS_NAME}"
IMAGE_FETCH_SCRIPT = f"/opt/braas/{FETCH_SCRIPT_NAME}"
RUNSCRIPT = f'exec python3 -I {ENTRY_POINT} "$@"'

RUNTIMES = ("apptainer", "singularity")
ARCHES = ("x86_64", "aarch64")
# archive: blender.org's release archive; pypi: the Blender Foundation's bpy wheel; debian:
# the base's own Debian blender package (aarch64: the Blender Foundation publishes no Linux
# arm64 build).
SOURCES = ("archive", "pypi", "debian")
#: The Debian releases the recipe's base may be (debian:<release>-slim).
DEBIAN_RELEASES = ("bookworm", "trixie")
#: What ``container build --arch ARCH`` builds where no build argument says otherwise: for
#: aarch64, Debian trixie's own Blender (4.3.2, Cycles on the CPU, no GPU kernels, no
#: OpenImageDenoise), pinned in the checksum table.
ARCH_BUILD_ARGS = {
    "x86_64": {"BLENDER_ARCH": "x86_64"},
    "aarch64": {"BLENDER_ARCH": "aarch64", "BLENDER_SOURCE": "debian",
                "BLENDER_VERSION": "4.3.2", "DEBIAN_RELEASE": "trixie"},
}
#: The architecture names Apptainer's --arch takes (Go's).
APPTAINER_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
# The image's squashfs compression (mksquashfs -comp): gzip is Apptainer's default and
# mounts everywhere; zstd and lz4 unpack faster at every task's start, where the kernel has
# them (CONFIG_SQUASHFS_ZSTD / _LZ4; without, Apptainer falls back to slower ways).
COMPRESSIONS = ("gzip", "zstd", "lz4")
REQUIRED_SECTIONS = ("arguments", "files", "post", "labels", "help", "runscript", "test")
BUILD_ARGS = ("BLENDER_VERSION", "BLENDER_ARCH", "BLENDER_SOURCE", "DEBIAN_RELEASE")

LABEL_GLOBUS_VERSION = "org.braas.globus.version"
LABEL_BLENDER_VERSION = "org.braas.blender.version"
LABEL_BLENDER_ARCH = "org.braas.blender.arch"  # written by %post
LABEL_BLENDER_SOURCE = "org.braas.blender.source"  # written by %post
LABEL_BLENDER_SHA256 = "org.braas.blender.sha256"  # written by %post
# What the image's Blender renders with, as it said at build time (fetch_blender.sh).
LABEL_BLENDER_DEVICES = "org.braas.blender.devices"  # CPU,CUDA,OPTIX,...
LABEL_BLENDER_OIDN = "org.braas.blender.openimagedenoise"  # yes or no
IMAGE_LABELS = (LABEL_GLOBUS_VERSION, LABEL_BLENDER_VERSION, LABEL_BLENDER_ARCH,
                LABEL_BLENDER_SOURCE, LABEL_BLENDER_SHA256, LABEL_BLENDER_DEVICES,
                LABEL_BLENDER_OIDN)

#: A Blender release, X.Y.Z: what BLENDER_VERSION and the checksum table's rows name.
BLENDER_RELEASE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
