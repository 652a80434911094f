"""The Apptainer render image: its recipe, the command line that runs a task in it, and
building, inspecting and verifying an image.

The recipe is ``container/Apptainer.def`` with its checksum table
``container/blender-sha256.txt`` and download script ``container/fetch_blender.sh``. It is
parsed with spython (the bootstrap agent, From, %labels, %files and %runscript as spython's
Recipe holds them); spython folds %arguments and %help into comments and rewrites %test into
echo lines, so section bodies are also read as written (``Recipe.sections``).

``exec_argv`` is the one layout a render task runs under, built from the cluster catalog:

    [runtime, "exec", "--contain", "--pwd", JOB_ROOT, *gpu_flags, "--bind", JOB_ROOT,
     IMAGE, "python3", "-I", "/opt/braas/worker/render_task.py", TASK_FILE]

``--contain`` keeps $HOME, /tmp, the working directory and the site's ``bind path`` entries
out of the container (GPU devices still come in with --nv and --rocm); the job folder is the
only bind. ``dispatch/compute_task.py`` builds the same list from the endpoint's environment
(it is sent by source and cannot import this module); tests/test_container.py fails when
the two differ.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import __version__
from .catalog import Cluster, load_catalog
from .errors import RunError, UsageError

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
# archive: blender.org's release archive; pypi: the Blender Foundation's bpy wheel.
SOURCES = ("archive", "pypi")
# The image's squashfs compression (mksquashfs -comp): gzip is Apptainer's default and
# mounts everywhere; zstd and lz4 unpack faster at every task's start, where the kernel has
# them (CONFIG_SQUASHFS_ZSTD / _LZ4; without, Apptainer falls back to slower ways).
COMPRESSIONS = ("gzip", "zstd", "lz4")
REQUIRED_SECTIONS = ("arguments", "files", "post", "labels", "help", "runscript", "test")
BUILD_ARGS = ("BLENDER_VERSION", "BLENDER_ARCH", "BLENDER_SOURCE")

LABEL_GLOBUS_VERSION = "org.braas.globus.version"
LABEL_BLENDER_VERSION = "org.braas.blender.version"
LABEL_BLENDER_ARCH = "org.braas.blender.arch"  # written by %post
LABEL_BLENDER_SOURCE = "org.braas.blender.source"  # written by %post
LABEL_BLENDER_SHA256 = "org.braas.blender.sha256"  # written by %post
IMAGE_LABELS = (LABEL_GLOBUS_VERSION, LABEL_BLENDER_VERSION, LABEL_BLENDER_ARCH,
                LABEL_BLENDER_SOURCE, LABEL_BLENDER_SHA256)

_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DEVICE = re.compile(r"/dev/[A-Za-z0-9_][A-Za-z0-9_./-]*")
_FETCH_CALL = re.compile(
    r'fetch_blender\.sh\s+"\{\{ BLENDER_VERSION \}\}"\s+"\{\{ BLENDER_ARCH \}\}"\s+(?:\\\s+)?'
    r'"\{\{ BLENDER_SOURCE \}\}"\s+(?:\\\s+)?' + re.escape(IMAGE_CHECKSUMS))
_GPU_FLAGS = ("--nv", "--nvccli", "--rocm")


# --- the checksum table ---------------------------------------------------------------------

@dataclass(frozen=True)
class ChecksumRow:
    version: str
    arch: str
    source: str
    sha256: str
    url: str | None
    line: int

    @property
    def pinned(self) -> bool:
        """True when sha256 is a real value, not a placeholder."""
        return bool(_SHA256.fullmatch(self.sha256))


def read_checksums(path: Path) -> tuple[list[ChecksumRow], list[str]]:
    """The rows of a checksum table and what is wrong with it (placeholders included)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        return [], [f"checksum table {path}: cannot read it ({err})"]
    rows: list[ChecksumRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str, str], int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"{Path(path).name} line {number}"
        if len(fields) not in (4, 5):
            problems.append(f"{where}: write VERSION ARCH SOURCE SHA256 [URL], not {line!r}")
            continue
        row = ChecksumRow(fields[0], fields[1], fields[2], fields[3],
                          url=fields[4] if len(fields) == 5 else None, line=number)
        if not _VERSION.fullmatch(row.version):
            problems.append(f"{where}: {row.version!r} is not a Blender release X.Y.Z")
        if row.arch not in ARCHES:
            problems.append(f"{where}: architecture {row.arch!r} is not one of {', '.join(ARCHES)}")
        if row.source not in SOURCES:
            problems.append(f"{where}: source {row.source!r} is not one of {', '.join(SOURCES)}")
        if not row.pinned:
            problems.append(f"{where}: fill in the sha256 of Blender {row.version} for {row.arch} "
                            f"from {row.source} ({row.sha256!r} is a placeholder, not 64 "
                            "lowercase hex digits)")
        if row.url is not None and not row.url.startswith(("https://", "file://")):
            problems.append(f"{where}: the download URL must be https://, not {row.url!r}")
        key = (row.version, row.arch, row.source)
        if key in seen:
            problems.append(f"{where}: a second row for Blender {row.version} on {row.arch} "
                            f"from {row.source} (the first is line {seen[key]})")
        seen[key] = number
        rows.append(row)
    return rows, problems


def pinned_row(rows: Iterable[ChecksumRow], version: str, arch: str,
               source: str = "archive") -> ChecksumRow | None:
    return next((r for r in rows if (r.version, r.arch, r.source) == (version, arch, source)),
                None)


# --- the recipe ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """A definition file: header, section bodies as written, and spython's reading of it."""

    path: Path
    header: dict[str, str]
    sections: dict[str, list[str]]  # lower-case name -> lines as written (templates kept)
    arguments: dict[str, str]  # %arguments defaults
    values: dict[str, str]  # the arguments this reading was rendered with
    labels: dict[str, str]  # rendered
    raw_labels: dict[str, str]  # as written
    files: list[tuple[str, str]]  # (source, destination), rendered
    runscript: str | None
    spython_error: str | None = None
    template_names: frozenset[str] = field(default_factory=frozenset)

    @property
    def checkout(self) -> Path:
        """The folder %files paths are relative to: the checkout holding container/."""
        return self.path.parent.parent

    @property
    def checksums(self) -> Path:
        return self.path.parent / CHECKSUMS_NAME

    def section_text(self, name: str) -> str:
        return "\n".join(self.sections.get(name, []))


def split_sections(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Header keys and section bodies, split as Apptainer does: a line starting with %NAME."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        match = re.match(r"%([A-Za-z]+)\b", stripped)
        if match:
            current = sections.setdefault(match.group(1).lower(), [])
        elif current is not None:
            current.append(line)
        elif stripped and not stripped.startswith("#") and ":" in stripped:
            key, value = stripped.split(":", 1)
            header[key.strip().lower()] = value.strip()
    return header, sections


def _arguments(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            key, value = stripped.split("=", 1)
            found[key.strip()] = value.strip()
    return found


def render_template(text: str, values: dict[str, str]) -> str:
    """``{{ NAME }}`` replaced by its value, as ``apptainer build`` does; unknown names stay."""
    return _TEMPLATE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _pairs(lines: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        parts = line.strip().split(None, 1)
        if parts and not parts[0].startswith("#"):
            out[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out


def parse_recipe(path: str | Path = DEFAULT_RECIPE,
                 build_args: dict[str, str] | None = None) -> Recipe:
    """Read a definition file; ``build_args`` override the %arguments defaults."""
    from spython.main.parse.parsers import SingularityParser

    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read the recipe {path}: {err}") from None
    header, sections = split_sections(text)
    arguments = _arguments(sections.get("arguments", []))
    values = {**arguments, **(build_args or {})}
    rendered = render_template(text, values)
    labels: dict[str, str] = {}
    files: list[tuple[str, str]] = []
    runscript = None
    spython_error = None
    # spython parses a file by name; give it the rendered text, as apptainer build sees it.
    with tempfile.NamedTemporaryFile("w", suffix=".def", encoding="utf-8") as tmp:
        tmp.write(rendered)
        tmp.flush()
        try:
            parsed = SingularityParser(tmp.name).recipe
        except NotImplementedError as err:  # spython reads docker bootstraps only
            spython_error = (f"spython cannot parse it ({err}): it stops at any header, "
                             "comment or first section line that mentions the word bootstrap "
                             "without docker")
        else:
            layer = next(iter(parsed.values()))
            labels = _pairs(layer.labels)
            for line in layer.files:
                parts = line.split()
                if len(parts) == 2:
                    files.append((parts[0], parts[1]))
                else:
                    files.append((line, ""))
            runscript = layer.cmd
            header["from"] = layer.fromHeader or header.get("from", "")
    raw_labels = _pairs(sections.get("labels", []))
    return Recipe(path=path, header=header, sections=sections, arguments=arguments,
                  values=values, labels=labels, raw_labels=raw_labels, files=files,
                  runscript=runscript, spython_error=spython_error,
                  template_names=frozenset(_TEMPLATE.findall(text)))


def check_build_args(build_args: dict[str, str]) -> list[str]:
    """Problems with build arguments: only the recipe's own, with plain values."""
    problems = []
    for key, value in build_args.items():
        if key not in BUILD_ARGS:
            problems.append(f"unknown build argument {key!r}: the recipe takes "
                            f"{', '.join(BUILD_ARGS)}")
        elif key == "BLENDER_VERSION" and not _VERSION.fullmatch(value):
            problems.append(f"BLENDER_VERSION={value!r} is not a Blender release X.Y.Z")
        elif key == "BLENDER_ARCH" and value not in ("auto", *ARCHES):
            problems.append(f"BLENDER_ARCH={value!r}: use auto, {', '.join(ARCHES)}")
        elif key == "BLENDER_SOURCE" and value not in SOURCES:
            problems.append(f"BLENDER_SOURCE={value!r}: use {' or '.join(SOURCES)}")
    return problems


def check_build_binds(binds: Iterable[str]) -> list[str]:
    """Problems with ``SRC:DEST`` build binds: absolute paths, SRC existing, one bind each."""
    problems = []
    for bind in binds:
        src, sep, dest = bind.partition(":")
        if not sep or not src.startswith("/") or not dest.startswith("/") or "," in bind \
                or ":" in dest or any(c in bind for c in "\x00\n\r"):
            problems.append(f"--bind {bind!r}: write SRC:DEST, two absolute paths without ',' "
                            "(e.g. /etc/ssl/certs:/mnt)")
        elif not Path(src).exists():
            problems.append(f"--bind {bind!r}: {src} does not exist")
    return problems


def check_recipe(path: str | Path = DEFAULT_RECIPE) -> list[str]:
    """What is wrong with a definition file; an empty list when it is fit to build."""
    try:
        recipe = parse_recipe(path)
    except UsageError as err:
        return [str(err)]
    problems: list[str] = []
    if recipe.spython_error:
        problems.append(recipe.spython_error)
    if recipe.header.get("bootstrap", "").lower() != "docker":
        problems.append("Bootstrap must be docker (a Debian or Ubuntu image)")
    if not re.match(r"(docker://)?(debian|ubuntu)[:@]", recipe.header.get("from", "")):
        problems.append(f"From must be a Debian or Ubuntu image, not "
                        f"{recipe.header.get('from', '')!r}")
    for name in REQUIRED_SECTIONS:
        if not any(line.strip() for line in recipe.sections.get(name, [])):
            problems.append(f"the %{name} section is missing or empty")

    # Build arguments: every template has a default; the defaults are valid.
    for name in sorted(set(recipe.template_names) - set(recipe.arguments)):
        problems.append(f"{{{{ {name} }}}} is used but %arguments gives it no default")
    for name in BUILD_ARGS:
        if name not in recipe.arguments:
            problems.append(f"%arguments must give {name} a default")
    problems += check_build_args({k: v for k, v in recipe.arguments.items() if k in BUILD_ARGS})

    problems += _check_pin(recipe)
    problems += _check_files(recipe)
    problems += _check_labels(recipe)

    if recipe.runscript is not None and recipe.runscript.strip() != RUNSCRIPT:
        problems.append(f"%runscript must be `{RUNSCRIPT}`, not `{recipe.runscript}`")
    test = recipe.section_text("test")
    if test and (ENTRY_POINT not in test or "is_valid_image" not in test):
        problems.append(f"%test must render a frame through {ENTRY_POINT} and check it with "
                        "image_check.is_valid_image")
    return problems


def _check_pin(recipe: Recipe) -> list[str]:
    """The default Blender version and source and their sha256 are pinned together."""
    problems: list[str] = []
    rows, table_problems = read_checksums(recipe.checksums)
    problems += table_problems
    version = recipe.arguments.get("BLENDER_VERSION", "")
    source = recipe.arguments.get("BLENDER_SOURCE", "")
    if _VERSION.fullmatch(version) and source in SOURCES:
        row = pinned_row(rows, version, "x86_64", source)
        if row is None:
            problems.append(f"BLENDER_VERSION={version} has no x86_64 {source} row in "
                            f"{CHECKSUMS_NAME}: change the version and its sha256 together")
    if not _FETCH_CALL.search(recipe.section_text("post")):
        problems.append(f'%post must run {FETCH_SCRIPT_NAME} "{{{{ BLENDER_VERSION }}}}" '
                        f'"{{{{ BLENDER_ARCH }}}}" "{{{{ BLENDER_SOURCE }}}}" {IMAGE_CHECKSUMS} '
                        "(the checked download)")
    return problems


def _check_files(recipe: Recipe) -> list[str]:
    """%files installs every worker module from the package, the table and the script."""
    problems: list[str] = []
    mapped = {dst: src for src, dst in recipe.files}
    for src, dst in recipe.files:
        if not dst:
            problems.append(f"%files line {src!r}: write SOURCE DESTINATION")
        elif not (recipe.checkout / src).is_file():
            problems.append(f"%files source {src} does not exist in {recipe.checkout}")
        if dst.startswith(IMAGE_WORKER_DIR + "/") and \
                src != f"{WORKER_SOURCE}/{PurePosixPath(dst).name}":
            problems.append(f"%files puts {src} at {dst}: worker code comes from "
                            f"{WORKER_SOURCE}/ only (the code the local backend runs)")
    worker_dir = recipe.checkout / WORKER_SOURCE
    for module in sorted(worker_dir.glob("*.py")):
        dst = f"{IMAGE_WORKER_DIR}/{module.name}"
        if mapped.get(dst) != f"{WORKER_SOURCE}/{module.name}":
            problems.append(f"%files does not install {WORKER_SOURCE}/{module.name} as {dst}")
    for name, dst in ((CHECKSUMS_NAME, IMAGE_CHECKSUMS), (FETCH_SCRIPT_NAME, IMAGE_FETCH_SCRIPT)):
        if mapped.get(dst) != f"container/{name}":
            problems.append(f"%files does not install container/{name} as {dst}")
    copies = sorted(p.name for p in recipe.path.parent.glob("*.py"))
    if copies:
        problems.append(f"{recipe.path.parent} holds Python files ({', '.join(copies)}): the "
                        f"image takes its worker code from {WORKER_SOURCE}/, never a copy")
    return problems


def _check_labels(recipe: Recipe) -> list[str]:
    problems: list[str] = []
    globus = recipe.raw_labels.get(LABEL_GLOBUS_VERSION)
    if globus is None:
        problems.append(f"%labels has no {LABEL_GLOBUS_VERSION}")
    elif globus != __version__:
        problems.append(f"%labels {LABEL_GLOBUS_VERSION} is {globus}, but this checkout is "
                        f"braas-globus {__version__}")
    blender = recipe.raw_labels.get(LABEL_BLENDER_VERSION)
    if blender is None:
        problems.append(f"%labels has no {LABEL_BLENDER_VERSION}")
    elif re.fullmatch(r"\{\{\s*BLENDER_VERSION\s*\}\}", blender) is None:
        problems.append(f"%labels {LABEL_BLENDER_VERSION} must be {{{{ BLENDER_VERSION }}}} "
                        f"(the version actually built), not {blender!r}")
    return problems


# --- the command line a task runs under --------------------------------------------------

def _plain(value: object, what: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{what} must be a path, not {type(value).__name__}")
    text = os.fspath(value)
    if not text or any(c in text for c in "\x00\n\r"):
        raise UsageError(f"{what} {text!r} is empty or holds a control character")
    return text


def _gpu_flags(cluster: Cluster, partition: str) -> list[str]:
    """The catalog's exec flags for ``partition``, checked against the ones this image knows."""
    flags = list(cluster.container_flags_for(partition))
    i = 0
    while i < len(flags):
        if flags[i] in _GPU_FLAGS:
            i += 1
        elif flags[i] == "--bind" and i + 1 < len(flags) and _DEVICE.fullmatch(flags[i + 1]) \
                and ".." not in flags[i + 1]:
            i += 2
        else:
            raise RunError(f"catalog: {cluster.name} gives the exec flag {flags[i]!r}; the "
                           f"image knows {', '.join(_GPU_FLAGS)} and --bind /dev/...")
    return flags


def exec_argv(cluster: str | Cluster, partition: str, image: str | os.PathLike[str],
              job_root: str | os.PathLike[str], task_file: str | os.PathLike[str],
              runtime: str | None = None) -> list[str]:
    """The argv that runs one render task in the image on ``cluster``/``partition``.

    Flags come from the catalog only; the job folder is the one bound path (Apptainer reads
    ',' and ':' in a bind as separators, so a job folder holding them is refused).
    """
    if not isinstance(cluster, Cluster):
        cluster = load_catalog().get(cluster)
    flags = _gpu_flags(cluster, partition)
    runtime = runtime or cluster.container.runtime
    if PurePosixPath(runtime).name not in RUNTIMES or \
            (os.sep in runtime and not runtime.startswith("/")):
        raise UsageError(f"container runtime {runtime!r}: use {' or '.join(RUNTIMES)} "
                         "(a name on PATH or an absolute path)")
    image = _plain(image, "the image")
    if not image.startswith("/"):
        raise UsageError(f"the image {image!r} must be an absolute path to a .sif file")
    root = PurePosixPath(_plain(job_root, "the job folder"))
    if not root.is_absolute() or ".." in root.parts:
        raise UsageError(f"the job folder {str(root)!r} must be an absolute path without '..'")
    if any(c in str(root) for c in ",:"):
        raise UsageError(f"the job folder {str(root)!r} holds ',' or ':', which "
                         f"`{runtime} exec --bind` reads as separators")
    task = PurePosixPath(_plain(task_file, "the task file"))
    if ".." in task.parts or not task.is_relative_to(root) or task == root:
        raise UsageError(f"the task file {str(task)!r} must be inside the job folder {root}: "
                         "nothing else is bound into the container")
    return [runtime, "exec", "--contain", "--pwd", str(root), *flags, "--bind", str(root),
            image, "python3", "-I", ENTRY_POINT, str(task)]


# --- building, inspecting, verifying ---------------------------------------------------

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


def build(def_path: str | Path, image_path: str | Path,
          build_args: dict[str, str] | None = None, *, force: bool = False,
          fakeroot: bool = False, binds: Iterable[str] = (), compression: str = "gzip",
          runtime: str | None = None, log: Callable[[str], object] | None = None) -> Path:
    """``apptainer build IMAGE DEF`` in the checkout (argv, no shell); returns the image path.

    The recipe and the build arguments are checked first, so a bad pin fails in a second,
    not after a download. ``fakeroot`` builds in a user namespace (``--fakeroot``), where
    %post has every capability even when the host's capability set lacks some. ``binds``
    (``SRC:DEST``, DEST an existing folder in the base such as /mnt) reach %post and %test:
    a site's CA bundle or package mirror, named to pip with ``APPTAINERENV_PIP_CERT`` or
    ``APPTAINERENV_PIP_INDEX_URL``.
    """
    build_args = dict(build_args or {})
    binds = list(binds)
    recipe_path = Path(def_path).resolve()
    image = Path(image_path).resolve()
    problems = check_build_args(build_args) + check_build_binds(binds)
    if compression not in COMPRESSIONS:
        problems.append(f"compression {compression!r}: use {', '.join(COMPRESSIONS)}")
    if not problems:
        problems = check_recipe(recipe_path)
    if not problems:
        recipe = parse_recipe(recipe_path, build_args)
        version = recipe.values["BLENDER_VERSION"]
        source = recipe.values["BLENDER_SOURCE"]
        arch = recipe.values.get("BLENDER_ARCH", "auto")
        arch = {"auto": platform.machine(), "amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
        rows, _ = read_checksums(recipe.checksums)
        row = pinned_row(rows, version, arch, source)
        if row is None or not row.pinned:
            problems.append(f"no sha256 pinned for Blender {version} on {arch} from {source} "
                            f"in {recipe.checksums}: add the row first (see container/README.md)")
    if problems:
        raise UsageError(f"{recipe_path}: " + "; ".join(problems))
    if image.exists() and not force:
        raise UsageError(f"{image} exists: pass --force to replace it")
    found = _runtime_or_fail(runtime)
    argv = [found, "build"]
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
