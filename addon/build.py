"""Build the installable Blender extension: ``dist/braas_globus-<version>.zip``.

    python addon/build.py                         # linux-x64, Python 3.11 (Blender 4.2-5.0)
    python addon/build.py --platform windows-x64 --platform macos-arm64

The zip holds the add-on package (``addon/braas_globus_addon/``), its
``blender_manifest.toml`` with ``platforms`` and ``wheels`` filled in, and ``wheels/``:
this project's wheel and the wheels of its base dependencies for each target platform
(binary wheels only, as Blender installs them; no extras, so never ``bpy``). Blender
installs those wheels when the extension is installed: no "install dependencies" button.
Only the Python standard library and pip are needed; wheels come from PyPI (pip's cache
and configuration apply).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON = Path(__file__).resolve().parent / "braas_globus_addon"
MANIFEST = "blender_manifest.toml"

# Blender's platform names -> the pip platform tags whose wheels run there (newest first;
# Blender 4.2 and newer needs glibc 2.28 on Linux and macOS 11.2).
PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "linux-arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "windows-x64": ("win_amd64",),
    "windows-arm64": ("win_arm64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_11_0_x86_64", "macosx_10_13_x86_64"),
}
# Never bundled: Blender itself (the [blender] extra) must not come along by any path.
FORBIDDEN = re.compile(r"^(bpy|fake_bpy_module)[-_]", re.I)


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
    if re.search(r"^\s*(wheels|platforms)\s*=", text, re.M):
        raise BuildError(f"{ADDON / MANIFEST} must not list wheels or platforms: the build "
                         "adds them")
    return text


def with_wheels(manifest: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest with top-level ``platforms`` and ``wheels``, before its first table."""
    listed = "".join(f'  "./wheels/{name}",\n' for name in wheels)
    keys = (f"# Added by addon/build.py.\nplatforms = {json.dumps(platforms)}\n"
            f"wheels = [\n{listed}]\n\n")
    table = re.search(r"^\[", manifest, re.M)
    at = table.start() if table else len(manifest)
    text = manifest[:at] + keys + manifest[at:]
    parsed = tomllib.loads(text)
    if parsed.get("platforms") != platforms or len(parsed.get("wheels", [])) != len(wheels):
        raise BuildError("the manifest did not take the platforms and wheels lists")
    return text


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check",
               "--no-input", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines()
                 if line.strip() and "is ignored: it is neither a file nor" not in line]
        raise BuildError(f"`pip {args[0]}` failed:\n" + "\n".join(lines[-15:]))


def collect_wheels(folder: Path, platforms: list[str], python_version: str) -> list[Path]:
    """This project's wheel and every base dependency's wheel for ``platforms``."""
    project = folder / "project"
    _pip("wheel", "--no-deps", "--wheel-dir", str(project), str(ROOT))
    (own,) = project.glob("braas_globus-*.whl")
    wheels = folder / "wheels"
    wheels.mkdir()
    shutil.copy2(own, wheels / own.name)
    major, minor = python_version.split(".")
    for platform in platforms:
        tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
        _pip("download", "--only-binary=:all:", *tags, "--python-version", python_version,
             "--implementation", "cp", "--abi", f"cp{major}{minor}", "--abi", "abi3",
             "--abi", "none", "--dest", str(wheels), str(own))
    found = sorted(wheels.glob("*.whl"))
    if forbidden := [w.name for w in found if FORBIDDEN.match(w.name)]:
        raise BuildError(f"refusing to bundle Blender itself: {forbidden}")
    return found


def build(out_dir: Path, platforms: list[str], python_version: str = "3.11") -> Path:
    version = project_version()
    manifest = manifest_text(version)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"braas_globus-{version}.zip"
    with tempfile.TemporaryDirectory(prefix="braas-addon-build-") as temporary:
        wheels = collect_wheels(Path(temporary), platforms, python_version)
        manifest = with_wheels(manifest, platforms, [w.name for w in wheels])
        partial = target.with_suffix(".partial")
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
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="a Blender platform to bundle wheels for (repeat for several; "
                             "default linux-x64)")
    parser.add_argument("--python-version", default="3.11",
                        help="the Python of the target Blender (3.11 for Blender 4.2-5.0)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="where the zip goes (default: dist/)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d{1,2}", args.python_version):
        parser.error("--python-version looks like 3.11")
    try:
        target = build(args.out, sorted(set(args.platform or ["linux-x64"])),
                       args.python_version)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
