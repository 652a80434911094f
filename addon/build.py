"""Build the installable Blender extension: one zip for each Blender Python and platform.

    python addon/build.py                    # both Pythons, linux-x64 macos-arm64 windows-x64
    python addon/build.py --python 3.13 --platform linux-x64                   # one zip
    python addon/build.py --platform all     # every platform Blender names
    python addon/build.py --python 3.13 --platform linux-x64 --blender-min 4.2.0
                                             # a distribution's Blender on Python 3.13

Each zip is named as Blender's ``extension build --split-platforms`` names it, with the
Blender series before the platform: ``dist/braas_globus-<version>-blender4.2-5.0-linux_x64.zip``
(Python 3.11) and ``dist/braas_globus-<version>-blender5.1-up-linux_x64.zip`` (Python 3.13);
with ``--blender-min`` the name says the Python too (``blender4.2-up-py313``).
It holds the add-on package (``addon/braas_globus_addon/``), its ``blender_manifest.toml``
with ``blender_version_min``/``blender_version_max``, ``platforms`` and ``wheels`` filled in,
and ``wheels/``: this project's wheel and the wheels of its base dependencies for that Python
and platform (binary wheels only, as Blender installs them; no extras, so never ``bpy``).
Blender installs those wheels when the extension is installed: no "install dependencies"
button. Only the Python standard library and pip are needed; wheels come from PyPI (pip's
cache and configuration apply).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import NamedTuple

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip's own copy: pip is needed anyway
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ADDON = Path(__file__).resolve().parent / "braas_globus_addon"
MANIFEST = "blender_manifest.toml"


class Platform(NamedTuple):
    tags: tuple[str, ...]  # pip platform tags of the wheels that run there, newest first
    sys_platform: str  # as environment markers see it there
    machine: str  # platform_machine, as markers see it there


# Blender's platform names (Blender 4.2 and newer needs glibc 2.28 on Linux and macOS 11.2).
PLATFORMS: dict[str, Platform] = {
    "linux-x64": Platform(("manylinux_2_28_x86_64", "manylinux2014_x86_64"), "linux", "x86_64"),
    "linux-arm64": Platform(("manylinux_2_28_aarch64", "manylinux2014_aarch64"), "linux",
                            "aarch64"),
    "windows-x64": Platform(("win_amd64",), "win32", "AMD64"),
    "windows-arm64": Platform(("win_arm64",), "win32", "ARM64"),
    "macos-arm64": Platform(("macosx_11_0_arm64",), "darwin", "arm64"),
    "macos-x64": Platform(("macosx_11_0_x86_64", "macosx_10_13_x86_64"), "darwin", "x86_64"),
}
# Built when no --platform is given: the platforms of Blender's own release downloads.
DEFAULT_PLATFORMS = ("linux-x64", "macos-arm64", "windows-x64")


class Target(NamedTuple):
    blender_min: str
    blender_max: str | None  # the first Blender this zip does not fit (Blender's rule)
    label: str  # in the zip's name


# A Blender series runs one Python, and compiled wheels fit one Python: one zip per Python.
PYTHONS: dict[str, Target] = {
    "3.11": Target("4.2.0", "5.1.0", "blender4.2-5.0"),
    "3.13": Target("5.1.0", None, "blender5.1-up"),
}
# Never bundled: Blender itself (the [blender] extra) must not come along by any path.
FORBIDDEN = re.compile(r"^(bpy|fake_bpy_module)[-_]", re.I)
# Keys the build writes: the source manifest must not set them itself.
GENERATED = ("wheels", "platforms", "blender_version_max")


class BuildError(Exception):
    pass


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"]


def manifest_text(version: str) -> str:
    """The add-on's manifest, checked to carry the project's version."""
    text = (ADDON / MANIFEST).read_text(encoding="utf-8")
    declared = tomllib.loads(text).get("version")
    if declared != version:
        raise BuildError(f"{ADDON / MANIFEST} says version {declared!r} but pyproject.toml "
                         f"says {version!r}: make them equal")
    if re.search(rf"^\s*({'|'.join(GENERATED)})\s*=", text, re.M):
        raise BuildError(f"{ADDON / MANIFEST} must not set {', '.join(GENERATED)}: the build "
                         "adds them")
    return text


def target_for(python: str, blender_min: str | None = None) -> Target:
    """The Blender range of the zip for ``python``. ``blender_min`` opens it to older Blenders
    that run this Python anyway: a Linux distribution's build on its own system Python (Debian
    trixie's Blender 4.3 runs Python 3.13); the zip's name then says which Python it needs."""
    target = PYTHONS[python]
    if blender_min is None or blender_min == target.blender_min:
        return target
    if not re.fullmatch(r"\d+\.\d+\.\d+", blender_min) or _version(blender_min) < (4, 2, 0):
        raise BuildError(f"--blender-min {blender_min}: a version like 4.2.0, 4.2.0 or newer "
                         "(the first Blender with extensions)")
    if target.blender_max and _version(blender_min) >= _version(target.blender_max):
        raise BuildError(f"--blender-min {blender_min}: Python {python} zips stop before "
                         f"Blender {target.blender_max}")
    major_minor = ".".join(blender_min.split(".")[:2])
    upper = target.label.rsplit("-", 1)[1]
    return Target(blender_min, target.blender_max,
                  f"blender{major_minor}-{upper}-py{python.replace('.', '')}")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def zip_name(version: str, target: Target, platform: str) -> str:
    # Blender's split-platform name, <id>-<version>-<platform>.zip, with the Blender series.
    return f"braas_globus-{version}-{target.label}-{platform.replace('-', '_')}.zip"


def manifest_for(manifest: str, python: str, platform: str, wheels: list[str],
                 target: Target | None = None) -> str:
    """The manifest for one zip: its Blender range, platform and wheels, before any table."""
    target = target or PYTHONS[python]
    manifest, found = re.subn(r"^blender_version_min\s*=.*\n", "", manifest, flags=re.M)
    if found != 1:
        raise BuildError(f"{ADDON / MANIFEST} must set blender_version_min once")
    listed = "".join(f'  "./wheels/{name}",\n' for name in wheels)
    keys = (f"# Added by addon/build.py: the zip for Python {python} on {platform}.\n"
            f'blender_version_min = "{target.blender_min}"\n'
            + (f'blender_version_max = "{target.blender_max}"\n' if target.blender_max else "")
            + f"platforms = {json.dumps([platform])}\nwheels = [\n{listed}]\n\n")
    table = re.search(r"^\[", manifest, re.M)
    at = table.start() if table else len(manifest)
    text = manifest[:at] + keys + manifest[at:]
    parsed = tomllib.loads(text)
    if (parsed.get("platforms") != [platform] or len(parsed.get("wheels", [])) != len(wheels)
            or parsed.get("blender_version_max") != target.blender_max):
        raise BuildError("the manifest did not take the Blender range, platforms and wheels")
    return text


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check",
               "--no-input", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines()
                 if line.strip() and "is ignored: it is neither a file nor" not in line]
        raise BuildError(f"`pip {args[0]}` failed:\n" + "\n".join(lines[-15:]))


def project_wheel(folder: Path) -> Path:
    _pip("wheel", "--no-deps", "--wheel-dir", str(folder), str(ROOT))
    (own,) = folder.glob("braas_globus-*.whl")
    return own


def marker_environment(python: str, platform: str) -> dict[str, str]:
    """What environment markers see in Blender with ``python`` on ``platform``."""
    target = PLATFORMS[platform]
    system = {"linux": "Linux", "win32": "Windows", "darwin": "Darwin"}[target.sys_platform]
    return {"python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "sys_platform": target.sys_platform, "platform_system": system,
            "os_name": "nt" if target.sys_platform == "win32" else "posix",
            "platform_machine": target.machine, "extra": ""}


def requirements(wheel: Path) -> list[Requirement]:
    """A wheel's Requires-Dist, from its METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist()
                   if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        metadata = BytesHeaderParser().parsebytes(archive.read(name))
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def missing_requirements(wheels: list[Path], environment: dict[str, str]) -> list[str]:
    """What the target needs that is not among ``wheels``: pip evaluates environment markers
    for this machine even with --platform, so it misses what only Windows needs, say."""
    present = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
    missing = set()
    for wheel in wheels:
        for requirement in requirements(wheel):
            # Requirements of requested extras (pyjwt[crypto]) fail here: pip took them in.
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            if canonicalize_name(requirement.name) not in present:
                requirement.marker = None
                missing.add(str(requirement))
    return sorted(missing)


def collect_wheels(folder: Path, own: Path, python: str, platform: str) -> list[Path]:
    """This project's wheel and every base dependency's wheel for one Python and platform."""
    folder.mkdir()
    shutil.copy2(own, folder / own.name)
    tags = [arg for tag in PLATFORMS[platform].tags for arg in ("--platform", tag)]
    environment = marker_environment(python, platform)
    wanted = [str(own)]
    for _ in range(5):  # each round adds what the last one's markers left out
        # cpXY wheels for this Python, abi3 wheels (any CPython 3 from their tag on), pure ones.
        _pip("download", "--only-binary=:all:", *tags, "--python-version", python,
             "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}", "--abi",
             "abi3", "--abi", "none", "--dest", str(folder), *wanted)
        found = sorted(folder.glob("*.whl"))
        if not (wanted := missing_requirements(found, environment)):
            break
    else:
        raise BuildError(f"the wheels for {platform} and Python {python} still lack {wanted}")
    if forbidden := [w.name for w in found if FORBIDDEN.match(w.name)]:
        raise BuildError(f"refusing to bundle Blender itself: {forbidden}")
    return found


def write_zip(target: Path, manifest: str, wheels: list[Path]) -> None:
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest)
        for path in sorted(ADDON.rglob("*")):
            if path.is_file() and path.name != MANIFEST and "__pycache__" not in path.parts \
                    and path.suffix != ".pyc":
                archive.write(path, path.relative_to(ADDON).as_posix())
        for wheel in wheels:
            # Stored, not deflated: wheels are zip files already.
            archive.write(wheel, f"wheels/{wheel.name}", compress_type=zipfile.ZIP_STORED)
    partial.replace(target)


def build(out_dir: Path, platforms: list[str], pythons: list[str] | None = None,
          blender_min: str | None = None) -> list[Path]:
    """One zip for each of ``pythons`` (default: all) and ``platforms``; their paths."""
    version = project_version()
    targets = {python: target_for(python, blender_min) for python in pythons or list(PYTHONS)}
    manifest = manifest_text(version)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="braas-addon-build-") as temporary:
        folder = Path(temporary)
        own = project_wheel(folder / "project")
        for python, blenders in targets.items():
            for platform in platforms:
                wheels = collect_wheels(folder / f"{python}-{platform}", own, python, platform)
                target = out_dir / zip_name(version, blenders, platform)
                write_zip(target, manifest_for(manifest, python, platform,
                                               [w.name for w in wheels], blenders), wheels)
                built.append(target)
    return built


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # bad input: one line and exit 2, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="addon/build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", action="append", choices=[*sorted(PLATFORMS), "all"],
                        help="a Blender platform to build for (repeat for several; default "
                             f"{', '.join(DEFAULT_PLATFORMS)}; all: every one)")
    parser.add_argument("--python", "--python-version", action="append",
                        choices=list(PYTHONS), dest="python",
                        help="the Python of the target Blender (repeat for several; default "
                             "all): 3.11 for Blender 4.2-5.0, 3.13 for 5.1 and newer")
    parser.add_argument("--blender-min", metavar="X.Y.Z",
                        help="the oldest Blender the zip installs in (default: the first one "
                             "released on that Python); for a Linux distribution's Blender on "
                             "its system Python, e.g. Debian trixie's 4.3: --python 3.13 "
                             "--blender-min 4.2.0")
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="where the zips go (default: dist/)")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is not a folder")
    platforms = args.platform or list(DEFAULT_PLATFORMS)
    platforms = list(PLATFORMS) if "all" in platforms else list(dict.fromkeys(platforms))
    pythons = list(dict.fromkeys(args.python or PYTHONS))
    try:
        for python in pythons:
            target_for(python, args.blender_min)  # bad input before any download
    except BuildError as err:
        parser.error(str(err))
    try:
        targets = build(args.out, platforms, pythons, args.blender_min)
    except (BuildError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for target in targets:
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
