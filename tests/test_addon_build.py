"""addon/build.py: one add-on zip for each Blender Python and platform.

Each zip is checked with Blender's own extension code from PyPI bpy (``bl_pkg/cli/
blender_ext.py``): its validator, the compatibility test Blender runs before it installs a
zip from disk, and its install-from-file command. The wheels' tags are checked here too,
on their own rules, and so are their dependencies, with each zip's environment markers.
Wheels come from PyPI through pip (its cache keeps them between runs); no PyPI: skipped.
The zips are built once a session; tests/test_addon.py installs the Linux ones in bpy.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import load_module

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "addon" / "build.py"
ADDON_SOURCE = REPO / "addon" / "braas_globus_addon"
# The Pythons with a PyPI bpy here: each brings its Blender's validator.
BPY_PYTHONS = {
    "bpy 5.0 (.venv)": Path(sys.executable),
    "bpy 4.2 (.venv-blender-4.2)": REPO / ".venv-blender-4.2" / "bin" / "python",
    "bpy 5.1+ (.venv-py3.13)": REPO / ".venv-py3.13" / "bin" / "python",
}

build = load_module("braas_addon_build", BUILD_SCRIPT)
VERSION = build.project_version()

# What each zip must say, written out here rather than read from build.py.
TESTED = {
    ("3.11", "linux-x64"): "blender4.2-5.0-linux_x64",
    ("3.11", "windows-x64"): "blender4.2-5.0-windows_x64",
    ("3.11", "macos-arm64"): "blender4.2-5.0-macos_arm64",
    ("3.13", "linux-x64"): "blender5.1-up-linux_x64",
    ("3.13", "windows-x64"): "blender5.1-up-windows_x64",
    ("3.13", "macos-arm64"): "blender5.1-up-macos_arm64",
}
BLENDER_RANGE = {"3.11": ("4.2.0", "5.1.0"), "3.13": ("5.1.0", None)}
# Blender releases and their Python: each zip must fit exactly the ones of its Python.
BLENDERS = [((4, 2, 0), "3.11"), ((4, 5, 3), "3.11"), ((5, 0, 1), "3.11"),
            ((5, 1, 0), "3.13"), ((5, 2, 0), "3.13")]
ALL_PLATFORMS = ["linux-x64", "linux-arm64", "windows-x64", "windows-arm64", "macos-arm64",
                 "macos-x64"]
PARAMS = pytest.mark.parametrize("python,platform", list(TESTED), ids=list(TESTED.values()))

# --- building, once a session ----------------------------------------------------------------

_BUILT: dict[tuple[str, str], Path] = {}


def built_zips(tmp_path_factory, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], Path]:
    """The zips for ``wanted`` (python, platform) pairs, each built once a session."""
    for python in dict.fromkeys(python for python, _ in wanted):
        platforms = [p for py, p in wanted if py == python and (py, p) not in _BUILT]
        if not platforms:
            continue
        started = time.monotonic()
        try:
            paths = build.build(tmp_path_factory.mktemp("addon-dist"), platforms, [python])
        except build.BuildError as err:
            if "`pip " in str(err):
                pytest.skip(f"the wheels could not be fetched from PyPI: {err}")
            raise
        print(f"built {[p.name for p in paths]} in {time.monotonic() - started:.1f} s")
        _BUILT.update(zip(((python, p) for p in platforms), paths))
    return {key: _BUILT[key] for key in wanted}


@pytest.fixture(scope="session")
def zips(tmp_path_factory) -> dict[tuple[str, str], Path]:
    return built_zips(tmp_path_factory, list(TESTED))


def contents(path: Path) -> tuple[dict, dict[str, bytes]]:
    """A zip's manifest and its wheels (file name -> bytes)."""
    with zipfile.ZipFile(path) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        wheels = {Path(n).name: archive.read(n) for n in archive.namelist()
                  if n.startswith("wheels/")}
    return manifest, wheels


def blender_ext(python: Path) -> Path:
    """Blender's extension command line, from the bpy that ``python`` imports."""
    done = subprocess.run([str(python), "-c", "import importlib.util as u; "
                           "print(u.find_spec('bpy').submodule_search_locations[0])"],
                          capture_output=True, text=True, check=True)
    bpy_dir = Path(done.stdout.strip().splitlines()[-1])
    (tool,) = bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    return tool


# --- the wheel rules, written here on their own ----------------------------------------------

PLATFORM_TAG = {
    "linux-x64": r"manylinux(1|2010|2014|_2_\d+)_x86_64",
    "linux-arm64": r"manylinux(2014|_2_\d+)_aarch64",
    "windows-x64": r"win_amd64",
    "windows-arm64": r"win_arm64",
    "macos-arm64": r"macosx_\d+_\d+_(arm64|universal2)",
    "macos-x64": r"macosx_\d+_\d+_(x86_64|universal2)",
}


def platform_fits(tag: str, platform: str) -> bool:
    if tag == "any":
        return True
    if not re.fullmatch(PLATFORM_TAG[platform], tag):
        return False
    # Blender 4.2 and newer run on glibc 2.28 and macOS 11.2: no wheel may need more.
    if glibc := re.fullmatch(r"manylinux_2_(\d+)_\w+", tag):
        return int(glibc[1]) <= 28
    if macos := re.fullmatch(r"macosx_(\d+)_(\d+)_\w+", tag):
        return (int(macos[1]), int(macos[2])) <= (11, 2)
    return True


def python_fits(python_tags: list[str], abi_tags: list[str], python: str) -> bool:
    """cpXY-cpXY for this Python, cp3N-abi3 with N up to Y, or a pure py3-none wheel."""
    minor = int(python.split(".")[1])
    cpython = f"cp3{minor}"
    for abi in abi_tags:
        if abi == cpython and cpython in python_tags:
            return True
        if abi == "abi3" and any(re.fullmatch(r"cp3(\d+)", t) and int(t[3:]) <= minor
                                 for t in python_tags):
            return True
        if abi == "none" and {"py3", f"py3{minor}", cpython} & set(python_tags):
            return True
    return False


def misfits(wheel: str, python: str, platform: str) -> str | None:
    parts = wheel.removesuffix(".whl").split("-")
    python_tags, abi_tags, platform_tags = (part.split(".") for part in parts[-3:])
    if not python_fits(python_tags, abi_tags, python):
        return f"{wheel}: not for CPython {python}"
    if not any(platform_fits(tag, platform) for tag in platform_tags):
        return f"{wheel}: not for {platform}"
    return None


def marker_environment(python: str, platform: str) -> dict[str, str]:
    system, machine = {
        "linux-x64": ("Linux", "x86_64"), "windows-x64": ("Windows", "AMD64"),
        "macos-arm64": ("Darwin", "arm64")}[platform]
    return default_environment() | {
        "python_version": python, "python_full_version": f"{python}.0",
        "platform_system": system, "platform_machine": machine,
        "sys_platform": {"Linux": "linux", "Windows": "win32", "Darwin": "darwin"}[system],
        "os_name": "nt" if system == "Windows" else "posix"}


def requires(wheel: bytes) -> list[Requirement]:
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        (name,) = [n for n in archive.namelist()
                   if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        metadata = BytesHeaderParser().parsebytes(archive.read(name))
    return [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]


def unmet_dependencies(wheels: dict[str, bytes], environment: dict[str, str]) -> list[str]:
    """What braas-globus needs there (extras followed) that is not among ``wheels``."""
    by_name = {canonicalize_name(name.split("-")[0]): data for name, data in wheels.items()}
    todo, seen, unmet = [("braas-globus", frozenset())], set(), []
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in by_name:
            unmet.append(name)
            continue
        for requirement in requires(by_name[name]):
            marker = requirement.marker
            if marker is None or any(marker.evaluate(environment | {"extra": extra})
                                     for extra in {"", *extras}):
                todo.append((canonicalize_name(requirement.name),
                             frozenset(requirement.extras)))
    return sorted(set(unmet))


# --- tests -----------------------------------------------------------------------------------


def test_build_refuses_a_manifest_whose_version_differs_or_that_sets_what_it_adds(
        tmp_path, monkeypatch):
    text = (ADDON_SOURCE / "blender_manifest.toml").read_text()
    assert build.manifest_text(VERSION) == text
    monkeypatch.setattr(build, "ADDON", tmp_path)
    (tmp_path / "blender_manifest.toml").write_text(text.replace('version = "', 'version = "9'))
    with pytest.raises(build.BuildError, match="make them equal"):
        build.manifest_text(VERSION)
    for key in ("platforms = []", 'blender_version_max = "6.0.0"', "wheels = []"):
        (tmp_path / "blender_manifest.toml").write_text(text.replace("\nlicense", f"\n{key}"
                                                                     "\nlicense"))
        with pytest.raises(build.BuildError, match="the build adds them"):
            build.manifest_text(VERSION)


@pytest.mark.parametrize("args,says", [
    (["--platform", "linux"], "invalid choice: 'linux'"),
    (["--python", "3.12"], "invalid choice: '3.12'"),
    (["--out", str(BUILD_SCRIPT)], "is not a folder"),
    (["--platfrom", "linux-x64"], "unrecognized arguments"),
    (["--blender-min", "4.1.0"], "4.2.0 or newer"),
    (["--blender-min", "4.2"], "a version like 4.2.0"),
    (["--python", "3.11", "--blender-min", "5.1.0"], "stop before Blender 5.1.0"),
], ids=["platform", "python", "out", "option", "too-old", "not-a-version", "past-the-range"])
def test_bad_input_is_one_line_and_exit_2(args, says):
    done = subprocess.run([sys.executable, str(BUILD_SCRIPT), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("addon/build.py: error:")
    assert says in done.stderr


def test_default_builds_both_pythons_for_blenders_release_platforms(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(build, "build", lambda *args: calls.append(args) or [])
    assert build.main([]) == 0
    assert build.main(["--platform", "all", "--python", "3.13", "--out", str(tmp_path)]) == 0
    assert build.main(["--python-version", "3.11", "--platform", "linux-x64",
                       "--platform", "linux-x64"]) == 0
    assert calls == [
        (REPO / "dist", ["linux-x64", "macos-arm64", "windows-x64"], ["3.11", "3.13"], None),
        (tmp_path, list(build.PLATFORMS), ["3.13"], None),
        (REPO / "dist", ["linux-x64"], ["3.11"], None)]


def test_a_zip_for_a_distributions_blender_says_its_python_and_range():
    # Debian trixie's Blender 4.3 runs Python 3.13: the 3.13 wheels, from Blender 4.2 on.
    target = build.target_for("3.13", "4.2.0")
    name = build.zip_name(VERSION, target, "linux-x64")
    assert name == f"braas_globus-{VERSION}-blender4.2-up-py313-linux_x64.zip"
    manifest = tomllib.loads(build.manifest_for(build.manifest_text(VERSION), "3.13",
                                                "linux-x64", ["a.whl"], target))
    assert manifest["blender_version_min"] == "4.2.0"
    assert "blender_version_max" not in manifest
    assert build.target_for("3.13", build.PYTHONS["3.13"].blender_min) == build.PYTHONS["3.13"]
    assert sorted(build.PLATFORMS) == sorted(ALL_PLATFORMS)


def test_dependencies_follow_the_markers_of_the_target_not_of_this_machine(tmp_path):
    # pip evaluates markers for the machine it runs on; build.py adds what the target needs.
    def wheel(name: str, *requires: str) -> Path:
        path = tmp_path / f"{name}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{name}-1.0.dist-info/METADATA", "Metadata-Version: 2.1\n"
                             f"Name: {name}\nVersion: 1.0\n"
                             + "".join(f"Requires-Dist: {r}\n" for r in requires))
        return path

    wheels = [wheel("app", "colorama; platform_system == 'Windows'",
                    "audioop-lts>=0.2; python_version >= '3.13'", "dep>=1",
                    "pytest; extra == 'test'", "uvloop; sys_platform != 'win32'"), wheel("dep")]
    missing = {(python, platform): build.missing_requirements(
        wheels, build.marker_environment(python, platform))
        for python in ("3.11", "3.13") for platform in ("linux-x64", "windows-x64")}
    assert missing == {("3.11", "linux-x64"): ["uvloop"], ("3.11", "windows-x64"): ["colorama"],
                       ("3.13", "linux-x64"): ["audioop-lts>=0.2", "uvloop"],
                       ("3.13", "windows-x64"): ["audioop-lts>=0.2", "colorama"]}


def test_the_wheel_rules_here_refuse_what_does_not_fit():
    fits = ["pydantic_core-2.0-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "cryptography-1-cp311-abi3-manylinux_2_28_x86_64.whl", "attrs-1-py3-none-any.whl",
            "six-1-py2.py3-none-any.whl"]
    assert [misfits(w, "3.13", "linux-x64") for w in fits] == [None] * 4
    assert misfits("pydantic_core-2.0-cp311-cp311-manylinux_2_17_x86_64.whl", "3.13",
                   "linux-x64").endswith("not for CPython 3.13")
    assert misfits("cryptography-1-cp314-abi3-manylinux_2_28_x86_64.whl", "3.13", "linux-x64")
    assert misfits("psutil-1-cp36-abi3-manylinux_2_34_x86_64.whl", "3.11", "linux-x64")
    assert misfits("psutil-1-cp36-abi3-win_amd64.whl", "3.11", "linux-x64")
    assert misfits("psutil-1-cp36-abi3-macosx_12_0_arm64.whl", "3.11", "macos-arm64")
    assert misfits("psutil-1-cp36-abi3-macosx_10_9_universal2.whl", "3.11", "macos-arm64") is None


@PARAMS
def test_zip_is_named_for_its_blender_and_platform_and_says_so(zips, python, platform):
    path = zips[python, platform]
    assert path.name == f"braas_globus-{VERSION}-{TESTED[python, platform]}.zip"
    manifest, wheels = contents(path)
    low, high = BLENDER_RANGE[python]
    assert (manifest["id"], manifest["version"]) == ("braas_globus", VERSION)
    assert manifest["blender_version_min"] == low
    assert manifest.get("blender_version_max") == high
    assert manifest["platforms"] == [platform]
    assert sorted(manifest["wheels"]) == sorted(f"./wheels/{name}" for name in wheels)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {"__init__.py", "worker.py", "operations.py", "operators.py", "panels.py",
            "preferences.py", "properties.py", "results.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    print(f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB, {len(wheels)} wheels")


@PARAMS
def test_zip_wheels_fit_its_python_and_platform_and_are_complete(zips, python, platform):
    manifest, wheels = contents(zips[python, platform])
    assert [m for w in wheels if (m := misfits(w, python, platform))] == []
    names = {canonicalize_name(w.split("-")[0]) for w in wheels}
    assert {"braas-globus", "pydantic", "pydantic-core", "globus-sdk", "globus-compute-sdk",
            "blender-asset-tracer", "platformdirs", "cryptography", "psutil"} <= names
    assert not names & {"bpy", "fake-bpy-module"}  # never Blender itself
    compiled = [w for w in wheels if not w.endswith("-any.whl")]
    assert any(w.startswith("pydantic_core-") for w in compiled)
    assert unmet_dependencies(wheels, marker_environment(python, platform)) == []


@PARAMS
def test_blender_accepts_the_zip_exactly_where_it_fits(zips, python, platform):
    path = zips[python, platform]
    manifest, _ = contents(path)
    # Blender's validator, from each bpy here.
    for label, bpy_python in BPY_PYTHONS.items():
        if not bpy_python.exists():
            print(f"no validator of {label}: {bpy_python} is missing")
            continue
        checked = subprocess.run([str(bpy_python), str(blender_ext(bpy_python)), "validate",
                                  str(path)], capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "Success" in checked.stdout, (label, checked.stdout)
    # What Blender checks before it installs a zip from disk (bl_pkg's manifest check):
    # the Python its wheels are for, the Blender range and the platforms.
    ext = load_module("blender_ext_cli", blender_ext(Path(sys.executable)))
    versions = ext.python_versions_from_wheels(manifest["wheels"])
    assert versions == {tuple(int(n) for n in python.split("."))}, versions
    item = {key: manifest[key] for key in ("blender_version_min", "blender_version_max",
                                           "platforms") if key in manifest}
    item["python_versions"] = [".".join(map(str, v)) for v in versions]
    accepted, refusals = [], set()

    def refused(error):
        raise error

    for blender, blender_python in BLENDERS:
        for where in ALL_PLATFORMS:
            reasons = []
            if not ext.repository_filter_skip(
                    item, filter_blender_version=blender, filter_platform=where,
                    filter_python_version=(*map(int, blender_python.split(".")), 0),
                    skip_message_fn=reasons.append, error_fn=refused):
                accepted.append((blender, where))
            refusals.update(reasons)
    assert accepted == [(b, platform) for b, p in BLENDERS if p == python]
    other = {"3.11": "3.13", "3.13": "3.11"}[python]
    # The refusal of issue 10, now only where it is right.
    assert f"This Python version ({other}) isn't compatible with ({python})" in refusals
    print("\n".join(sorted(refusals)))


@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_blenders_install_command_installs_the_linux_zip_only_in_its_blenders(
        zips, python, tmp_path):
    path = zips[python, "linux-x64"]
    tool = blender_ext(Path(sys.executable))
    for blender, blender_python in BLENDERS:
        local = tmp_path / ".".join(map(str, blender))
        local.mkdir()
        done = subprocess.run([sys.executable, str(tool), "install-files", "--local-dir",
                               str(local), "--blender-version", ".".join(map(str, blender)),
                               "--python-version", f"{blender_python}.0", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        installed = local / "braas_globus"
        if blender_python == python:
            assert 'Installed "braas_globus"' in done.stdout, done.stdout
            assert (installed / "__init__.py").is_file()
            assert len(list((installed / "wheels").glob("*.whl"))) == len(contents(path)[1])
        else:
            assert "ERROR: braas_globus: This Blender version" in done.stdout, done.stdout
            assert not installed.exists()
