"""The Apptainer render image: its recipe, the command line that runs a task in it, and
building, inspecting and verifying an image.

The recipe is ``container/Apptainer.def`` with its checksum table
``container/blender-sha256.txt`` and download script ``container/fetch_blender.sh``.
``exec_argv`` is the one layout a render task runs under, built from the cluster catalog;
``dispatch/compute_task.py`` builds the same list from the endpoint's environment and
tests/test_container.py fails when the two differ.

The parts, one job each: ``container_image.py`` (the fixed layout: paths, labels, build
values), ``container_checksums.py`` (the checksum table), ``container_recipe.py`` (reading
and checking the recipe), ``container_exec.py`` (the argv of a task) and
``container_build.py`` (building, inspecting, verifying). Import any of it from here.
"""

from __future__ import annotations

from .container_build import (
    NO_RUNTIME,
    build,
    check_labels,
    emulation_problem,
    find_runtime,
    inspect_labels,
    machine_arch,
    verify,
)
from .container_checksums import ChecksumRow, pinned_row, read_checksums
from .container_exec import exec_argv
from .container_image import (
    ARCH_BUILD_ARGS,
    ARCHES,
    BLENDER_RELEASE,
    BUILD_ARGS,
    CHECKSUMS_NAME,
    COMPRESSIONS,
    DEFAULT_RECIPE,
    ENTRY_POINT,
    FETCH_SCRIPT_NAME,
    IMAGE_CHECKSUMS,
    IMAGE_FETCH_SCRIPT,
    IMAGE_LABELS,
    IMAGE_WORKER_DIR,
    LABEL_BLENDER_ARCH,
    LABEL_BLENDER_DEVICES,
    LABEL_BLENDER_OIDN,
    LABEL_BLENDER_SHA256,
    LABEL_BLENDER_SOURCE,
    LABEL_BLENDER_VERSION,
    LABEL_GLOBUS_VERSION,
    REPO_ROOT,
    REQUIRED_SECTIONS,
    RUNSCRIPT,
    RUNTIMES,
    SOURCES,
    WORKER_SOURCE,
)
from .container_recipe import (
    Recipe,
    check_build_args,
    check_build_binds,
    check_recipe,
    parse_recipe,
    render_template,
    split_sections,
)

__all__ = [
    "ARCH_BUILD_ARGS", "ARCHES", "BLENDER_RELEASE", "BUILD_ARGS", "CHECKSUMS_NAME",
    "COMPRESSIONS",
    "DEFAULT_RECIPE", "ENTRY_POINT", "FETCH_SCRIPT_NAME", "IMAGE_CHECKSUMS",
    "IMAGE_FETCH_SCRIPT", "IMAGE_LABELS", "IMAGE_WORKER_DIR", "LABEL_BLENDER_ARCH",
    "LABEL_BLENDER_DEVICES", "LABEL_BLENDER_OIDN", "LABEL_BLENDER_SHA256", "LABEL_BLENDER_SOURCE", "LABEL_BLENDER_VERSION",
    "LABEL_GLOBUS_VERSION", "NO_RUNTIME", "REPO_ROOT", "REQUIRED_SECTIONS", "RUNSCRIPT",
    "RUNTIMES", "SOURCES", "WORKER_SOURCE", "ChecksumRow", "Recipe", "build",
    "check_build_args", "check_build_binds", "check_labels", "check_recipe",
    "emulation_problem", "exec_argv", "find_runtime", "machine_arch", "inspect_labels", "parse_recipe", "pinned_row", "read_checksums",
    "render_template", "split_sections", "verify",
]
