"""The recipe, ``container/Apptainer.def``: reading it as Apptainer and spython do, and what
is wrong with it (and with the build arguments and binds a build is given).

It is parsed with spython (the bootstrap agent, From, %labels, %files and %runscript as
spython's Recipe holds them); spython folds %arguments and %help into comments and rewrites
%test into echo lines, so section bodies are also read as written (``Recipe.sections``).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import __version__
from .container_checksums import pinned_row, read_checksums
from .container_image import (
    ARCHES,
    BLENDER_RELEASE,
    BUILD_ARGS,
    CHECKSUMS_NAME,
    DEBIAN_RELEASES,
    DEFAULT_RECIPE,
    ENTRY_POINT,
    FETCH_SCRIPT_NAME,
    IMAGE_CHECKSUMS,
    IMAGE_FETCH_SCRIPT,
    IMAGE_WORKER_DIR,
    LABEL_BLENDER_VERSION,
    LABEL_GLOBUS_VERSION,
    REQUIRED_SECTIONS,
    RUNSCRIPT,
    SOURCES,
    WORKER_SOURCE,
)
from .errors import UsageError

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FETCH_CALL = re.compile(
    r'fetch_blender\.sh\s+"\{\{ BLENDER_VERSION \}\}"\s+"\{\{ BLENDER_ARCH \}\}"\s+(?:\\\s+)?'
    r'"\{\{ BLENDER_SOURCE \}\}"\s+(?:\\\s+)?' + re.escape(IMAGE_CHECKSUMS))


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
        elif key == "BLENDER_VERSION" and not BLENDER_RELEASE.fullmatch(value):
            problems.append(f"BLENDER_VERSION={value!r} is not a Blender release X.Y.Z")
        elif key == "BLENDER_ARCH" and value not in ("auto", *ARCHES):
            problems.append(f"BLENDER_ARCH={value!r}: use auto, {', '.join(ARCHES)}")
        elif key == "BLENDER_SOURCE" and value not in SOURCES:
            problems.append(f"BLENDER_SOURCE={value!r}: use {', '.join(SOURCES)}")
        elif key == "DEBIAN_RELEASE" and value not in DEBIAN_RELEASES:
            problems.append(f"DEBIAN_RELEASE={value!r}: use {' or '.join(DEBIAN_RELEASES)}")
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
    if BLENDER_RELEASE.fullmatch(version) and source in SOURCES:
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
