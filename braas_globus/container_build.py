"""Building an image from the recipe with Apptainer (or Singularity), reading its labels,
and verifying it against this checkout and its checksum table.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from . import __version__
from .container_checksums import pinned_row, read_checksums
from .container_image import (
    APPTAINER_ARCH,
    ARCH_BUILD_ARGS,
    CHECKSUMS_NAME,
    COMPRESSIONS,
    DEFAULT_RECIPE,
    IMAGE_LABELS,
    LABEL_BLENDER_ARCH,
    LABEL_BLENDER_SHA256,
    LABEL_BLENDER_SOURCE,
    LABEL_BLENDER_VERSION,
    LABEL_GLOBUS_VERSION,
    RUNTIMES,
)
from .container_recipe import check_build_args, check_build_binds, check_recipe, parse_recipe
from .errors import RunError, UsageError

NO_RUNTIME = ("neither apptainer nor singularity is on PATH: build and inspect images on a "
              "machine with Apptainer 1.2 or newer (an HPC login node after `module load "
              "apptainer`, or a Linux workstation); see container/README.md")


def find_runtime(runtime: str | None = None) -> str | None:
    """The container runtime to call: ``runtime`` if given, else apptainer, else singularity."""
    for name in ([runtime] if runtime else RUNTIMES):
        found = shutil.which(name)
        if found:
            return found
    return None


def _runtime_or_fail(runtime: str | None) -> str:
    found = find_runtime(runtime)
    if found is None:
        raise RunError(NO_RUNTIME if runtime is None else f"{runtime} is not on PATH")
    return found


#: Other names of the recipe's architectures (Go's and Debian's).
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def machine_arch() -> str:
    """This machine's architecture, by the recipe's names (x86_64, aarch64)."""
    return ARCH_ALIASES.get(platform.machine(), platform.machine())


def emulation_problem(arch: str) -> str | None:
    """Why an image for ``arch`` cannot be built here, or None: another architecture's
    programs (%post, %test) run only through qemu's handler in the kernel's binfmt_misc."""
    if arch == machine_arch():
        return None
    handler = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{arch}"
    try:
        enabled = handler.read_text().splitlines()[:1] == ["enabled"]
    except OSError:
        enabled = False
    if enabled:
        return None
    return (f"building an {arch} image on this {machine_arch()} machine runs {arch} programs: "
            f"register qemu's {arch} handler first (as root: apt-get install qemu-user-static "
            "binfmt-support; see container/README.md), or build on an "
            f"{arch} machine")


def build(def_path: str | Path, image_path: str | Path,
          build_args: dict[str, str] | None = None, *, force: bool = False,
          fakeroot: bool = False, binds: Iterable[str] = (), compression: str = "gzip",
          runtime: str | None = None, log: Callable[[str], object] | None = None,
          arch: str | None = None) -> Path:
    """``apptainer build IMAGE DEF`` in the checkout (argv, no shell); returns the image path.

    The recipe and the build arguments are checked first, so a bad pin fails in a second,
    not after a download. ``fakeroot`` builds in a user namespace (``--fakeroot``), where
    %post has every capability even when the host's capability set lacks some. ``binds``
    (``SRC:DEST``, DEST an existing folder in the base such as /mnt) reach %post and %test:
    a site's CA bundle or package mirror, named to pip with ``APPTAINERENV_PIP_CERT`` or
    ``APPTAINERENV_PIP_INDEX_URL``. ``arch`` (x86_64, aarch64) builds for that architecture
    with its defaults (ARCH_BUILD_ARGS; build arguments still win), emulated where this
    machine is another (qemu's binfmt_misc handler).
    """
    if arch is not None and arch not in ARCH_BUILD_ARGS:
        raise UsageError(f"--arch {arch!r}: use {' or '.join(ARCH_BUILD_ARGS)}")
    build_args = {**(ARCH_BUILD_ARGS[arch] if arch else {}), **(build_args or {})}
    binds = list(binds)
    recipe_path = Path(def_path).resolve()
    image = Path(image_path).resolve()
    problems = check_build_args(build_args) + check_build_binds(binds)
    if compression not in COMPRESSIONS:
        problems.append(f"compression {compression!r}: use {', '.join(COMPRESSIONS)}")
    if not problems:
        problems = check_recipe(recipe_path)
    target = machine_arch()
    if not problems:
        recipe = parse_recipe(recipe_path, build_args)
        version = recipe.values["BLENDER_VERSION"]
        source = recipe.values["BLENDER_SOURCE"]
        named = recipe.values.get("BLENDER_ARCH", "auto")
        target = target if named == "auto" else ARCH_ALIASES.get(named, named)
        if (emulated := emulation_problem(target)) is not None:
            problems.append(emulated)
        rows, _ = read_checksums(recipe.checksums)
        row = pinned_row(rows, version, target, source)
        if row is None or not row.pinned:
            problems.append(f"no sha256 pinned for Blender {version} on {target} from {source} "
                            f"in {recipe.checksums}: add the row first (see container/README.md)")
    if problems:
        raise UsageError(f"{recipe_path}: " + "; ".join(problems))
    if image.exists() and not force:
        raise UsageError(f"{image} exists: pass --force to replace it")
    found = _runtime_or_fail(runtime)
    argv = [found, "build"]
    if target != machine_arch():  # the base for that architecture; %post runs emulated
        argv += ["--arch", APPTAINER_ARCH[target]]
    for key, value in sorted(build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if force:
        argv.append("--force")
    if fakeroot:
        argv.append("--fakeroot")
    for bind in binds:
        argv += ["--bind", bind]
    if compression != "gzip":
        argv += ["--mksquashfs-args", f"-comp {compression}"]
    argv += [str(image), str(recipe_path)]
    write = log or (lambda line: print(line, end="", file=sys.stderr, flush=True))
    write(f"braas: {' '.join(argv)} (in {recipe.checkout}; it downloads a Debian base and "
          f"Blender {version} from {source}, then runs %test)\n")
    process = subprocess.Popen(argv, cwd=recipe.checkout, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                               errors="replace")
    tail: list[str] = []
    capability_refused = False
    assert process.stdout is not None
    for line in process.stdout:
        write(line)
        tail = (tail + [line.rstrip()])[-5:]
        capability_refused |= "Requesting capability set" in line
    code = process.wait()
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "no output")
        hint = ("; root on this host lacks a capability that a root build asks for in %post: "
                "build with --fakeroot" if capability_refused and not fakeroot else "")
        raise RunError(f"{PurePosixPath(found).name} build failed with exit code {code}: "
                       f"{last}{hint}")
    return image


def inspect_labels(image: str | Path, runtime: str | None = None) -> dict[str, str]:
    """The image's labels, from ``apptainer inspect --json --labels IMAGE``."""
    image = Path(image)
    if not image.is_file():
        raise UsageError(f"no image at {image}")
    found = _runtime_or_fail(runtime)
    done = subprocess.run([found, "inspect", "--json", "--labels", str(image)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunError(f"{PurePosixPath(found).name} inspect {image} failed: {reason}")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise RunError(f"{PurePosixPath(found).name} inspect printed no JSON for {image}") from None
    labels = data.get("data", {}).get("attributes", {}).get("labels", data) \
        if isinstance(data, dict) else None
    if not isinstance(labels, dict):
        raise RunError(f"{PurePosixPath(found).name} inspect printed no labels for {image}")
    return {str(k): str(v) for k, v in labels.items()}


def check_labels(labels: dict[str, str], recipe: str | Path = DEFAULT_RECIPE) -> list[str]:
    """What is wrong with an image's labels, against this checkout and its checksum table."""
    problems = [f"the image has no {name} label" for name in IMAGE_LABELS if name not in labels]
    globus = labels.get(LABEL_GLOBUS_VERSION)
    if globus is not None and globus != __version__:
        problems.append(f"the image holds braas-globus {globus}; this checkout is {__version__}: "
                        "rebuild it so the worker code matches")
    version = labels.get(LABEL_BLENDER_VERSION)
    arch = labels.get(LABEL_BLENDER_ARCH)
    source = labels.get(LABEL_BLENDER_SOURCE)
    sha256 = labels.get(LABEL_BLENDER_SHA256)
    if version is not None and arch is not None and source is not None and sha256 is not None:
        rows, _ = read_checksums(Path(recipe).parent / CHECKSUMS_NAME)
        row = pinned_row(rows, version, arch, source)
        if row is None:
            problems.append(f"the image holds Blender {version} ({arch}, from {source}), which "
                            f"{CHECKSUMS_NAME} does not pin")
        elif row.sha256 != sha256:
            problems.append(f"the image's Blender {version} ({arch}, from {source}) has sha256 "
                            f"{sha256}; {CHECKSUMS_NAME} pins {row.sha256}")
    return problems


def verify(image: str | Path, recipe: str | Path = DEFAULT_RECIPE,
           runtime: str | None = None) -> list[str]:
    """What is wrong with a built image: labels present and matching this checkout."""
    return check_labels(inspect_labels(image, runtime), recipe)
