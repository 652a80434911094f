"""The Apptainer render image (issue 5): recipe, Blender pin, exec command line, CLI.

The recipe is parsed with spython, the exec command line is checked for every catalog
cluster and partition, the build's download step (container/fetch_blender.sh) runs on local
files, and the recipe's %test runs on the host with PyPI bpy. Where `apptainer` is on PATH
(.ci/apptainer/ installs it on this Debian 12 machine, which does not package it), the image
is built from the unchanged recipe and renders frames the way a centre runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import typer
from spython.main.parse.parsers import SingularityParser

from braas_globus import __version__
from braas_globus import container as ct
from braas_globus.catalog import load_catalog
from braas_globus.cli.container import container_app
from braas_globus.dispatch import compute_task
from braas_globus.errors import RunError, UsageError
from braas_globus.worker.image_check import is_valid_image

from .conftest import build_scene

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "container" / "Apptainer.def"
TABLE = REPO / "container" / "blender-sha256.txt"
FETCH = REPO / "container" / "fetch_blender.sh"
WORKER = REPO / "braas_globus" / "worker"
# The default pin, recorded a second time: blender.org's blender-4.5.14.sha256 lists this for
# blender-4.5.14-linux-x64.tar.xz. Bumping BLENDER_VERSION means updating the def, the table
# and this line together.
PUBLISHED = ("4.5.14", "x86_64", "archive",
             "9ba871ff2ecd36526b77432745980b7e6664ecd0c7ca11c48849073dcfe06da3")
# PyPI's published sha256 for bpy-4.5.14-cp311-cp311-manylinux_2_28_x86_64.whl, and for
# bpy-5.0.1's: the real build below uses 5.0.1 (conftest.IMAGE_BLENDER), because this machine
# reaches PyPI but not download.blender.org, and the test scenes are saved by bpy 5.0.1.
PUBLISHED_WHEEL = ("4.5.14", "x86_64", "pypi",
                   "1697c44362887e3b714f54035f1167131801249b8b46ff226b615be4ce9cabde")
PUBLISHED_WHEEL_5 = ("5.0.1", "x86_64", "pypi",
                     "79c6e421f53ea24a5961d86eefb8141798eee708682415eb4f5a952c2abdeb8b")

CLUSTER_PARTITIONS = [(name, part) for name, c in load_catalog().clusters.items()
                      for part in c.partitions]


# --- the recipe -----------------------------------------------------------------------------

def test_recipe_is_parsed_by_spython_and_has_no_problems():
    parsed = SingularityParser(str(RECIPE)).recipe
    layer = next(iter(parsed.values()))
    assert layer.fromHeader == "debian:{{ debian_release }}-slim"  # as written (spython)
    assert any(line.startswith("org.braas.blender.version ") for line in layer.labels)
    assert ct.check_recipe(RECIPE) == []
    # As apptainer build renders it: bookworm by default, trixie for Debian's own Blender.
    assert ct.parse_recipe(RECIPE).header["from"] == "debian:bookworm-slim"
    aarch64 = ct.parse_recipe(RECIPE, ct.ARCH_BUILD_ARGS["aarch64"])
    assert aarch64.header["from"] == "debian:trixie-slim"


def test_required_sections_labels_and_entry_point():
    recipe = ct.parse_recipe(RECIPE)
    assert recipe.header["bootstrap"] == "docker"
    for name in ct.REQUIRED_SECTIONS:
        assert any(line.strip() for line in recipe.sections[name]), name
    assert recipe.arguments == {"BLENDER_VERSION": PUBLISHED[0], "BLENDER_ARCH": "auto",
                                "BLENDER_SOURCE": "archive", "DEBIAN_RELEASE": "bookworm"}
    assert recipe.labels[ct.LABEL_GLOBUS_VERSION] == __version__
    assert recipe.labels[ct.LABEL_BLENDER_VERSION] == PUBLISHED[0]
    assert recipe.raw_labels[ct.LABEL_BLENDER_VERSION] == "{{ BLENDER_VERSION }}"
    assert recipe.runscript == 'exec python3 -I /opt/braas/worker/render_task.py "$@"'
    # A build argument reaches the labels as apptainer build renders them.
    other = ct.parse_recipe(RECIPE, {"BLENDER_VERSION": "4.5.13"})
    assert other.labels[ct.LABEL_BLENDER_VERSION] == "4.5.13"


def test_files_installs_every_worker_module_from_the_package():
    mapped = dict(ct.parse_recipe(RECIPE).files)
    modules = sorted(p.name for p in WORKER.glob("*.py"))
    assert {"render_task.py", "blender_render.py", "frames.py", "image_check.py"} <= set(modules)
    for name in modules:
        assert mapped[f"braas_globus/worker/{name}"] == f"/opt/braas/worker/{name}"
    assert mapped["container/blender-sha256.txt"] == "/opt/braas/blender-sha256.txt"
    assert not list(RECIPE.parent.glob("*.py")), "no copy of the worker code in container/"


def test_default_pin_is_the_published_checksum():
    rows, problems = ct.read_checksums(TABLE)
    assert problems == []
    for published in (PUBLISHED, PUBLISHED_WHEEL, PUBLISHED_WHEEL_5):
        row = ct.pinned_row(rows, *published[:3])
        assert row is not None and (row.version, row.arch, row.source, row.sha256) == published
        assert row.url is None  # blender.org's own archive; bpy==4.5.14 from PyPI


def checkout_copy(tmp_path: Path, replace: tuple[str, str] | None = None,
                  table: str | None = None) -> Path:
    """A checkout with a modified copy of container/ and the real worker modules."""
    root = tmp_path / "checkout"
    (root / "container").mkdir(parents=True)
    shutil.copytree(WORKER, root / "braas_globus" / "worker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    text = RECIPE.read_text()
    if replace:
        assert replace[0] in text, replace[0]
        text = text.replace(*replace)
    (root / "container" / "Apptainer.def").write_text(text)
    (root / "container" / "blender-sha256.txt").write_text(table if table is not None
                                                           else TABLE.read_text())
    shutil.copy(FETCH, root / "container" / "fetch_blender.sh")
    return root / "container" / "Apptainer.def"


def table_with(*rows: str) -> str:
    return "# test table\n" + "\n".join(rows) + "\n"


def test_version_changed_without_its_checksum_is_detected(tmp_path):
    bumped = checkout_copy(tmp_path, ("BLENDER_VERSION=4.5.14", "BLENDER_VERSION=4.5.13"))
    problems = ct.check_recipe(bumped)
    assert any("BLENDER_VERSION=4.5.13 has no x86_64 archive row" in p for p in problems), problems


def test_checksum_moved_to_another_version_is_detected(tmp_path):
    moved = checkout_copy(tmp_path, table=table_with(f"4.5.13 x86_64 archive {PUBLISHED[3]}"))
    problems = ct.check_recipe(moved)
    assert any("BLENDER_VERSION=4.5.14 has no x86_64 archive row" in p for p in problems), problems


def test_version_and_checksum_changed_together_pass(tmp_path):
    both = checkout_copy(tmp_path, ("BLENDER_VERSION=4.5.14", "BLENDER_VERSION=4.5.13"),
                         table=table_with(f"4.5.13 x86_64 archive {'ab' * 32}"))
    assert ct.check_recipe(both) == []


@pytest.mark.parametrize("row, expected", [
    ("4.5.14 x86_64 archive FILL-IN", "fill in the sha256"),
    ("4.5.14 x86_64 archive 9BA871FF", "fill in the sha256"),
    (f"4.5.14 ppc64le archive {'ab' * 32}", "architecture 'ppc64le'"),
    (f"4.5.14 aarch64 conda {'ab' * 32}", "source 'conda'"),
    (f"4.5 x86_64 archive {'ab' * 32}", "is not a Blender release"),
    (f"4.5.14 aarch64 archive {'ab' * 32} http://example.org/b.tar.xz", "must be https://"),
    (f"4.5.14 x86_64 {'ab' * 32}", "write VERSION ARCH SOURCE SHA256 [URL]"),
    (f"4.3.2 aarch64 debian {'ab' * 32}", "a debian row ends with the package version"),
    (f"4.3.2 aarch64 debian {'ab' * 32} https://example.org/b.deb", "a debian row ends with"),
    (f"4.3.2 aarch64 debian {'ab' * 32} 4.3.1+dfsg-1", "a debian row ends with"),
])
def test_bad_checksum_rows_are_detected(tmp_path, row, expected):
    table = table_with(f"4.5.14 x86_64 archive {PUBLISHED[3]}", row) if "x86_64" not in row \
        else table_with(row)
    problems = ct.check_recipe(checkout_copy(tmp_path, table=table))
    assert any(expected in p for p in problems), problems


def test_duplicate_rows_are_detected(tmp_path):
    table = table_with(f"4.5.14 x86_64 archive {PUBLISHED[3]}",
                       f"4.5.14 x86_64 pypi {'cd' * 32}",  # another source: not a duplicate
                       f"4.5.14 x86_64 archive {'ab' * 32}")
    problems = ct.check_recipe(checkout_copy(tmp_path, table=table))
    assert [p for p in problems if "a second row" in p] == [
        "blender-sha256.txt line 4: a second row for Blender 4.5.14 on x86_64 from archive "
        "(the first is line 2)"]


@pytest.mark.parametrize("replace, expected", [
    (("org.braas.blender.version {{ BLENDER_VERSION }}", "org.braas.blender.version 4.5.14"),
     "must be {{ BLENDER_VERSION }}"),
    (("org.braas.globus.version 0.1.0", "org.braas.globus.version 0.0.9"),
     f"this checkout is braas-globus {__version__}"),
    (("    braas_globus/worker/frames.py /opt/braas/worker/frames.py\n", ""),
     "does not install braas_globus/worker/frames.py"),
    (("braas_globus/worker/frames.py /opt", "container/frames.py /opt"),
     "worker code comes from braas_globus/worker/ only"),
    (("Bootstrap: docker", "Bootstrap: debootstrap"), "spython cannot parse it"),
    (("%test\n", "%notest\n"), "the %test section is missing"),
    (("exec python3 -I", "exec python3"), "%runscript must be"),
    (('"{{ BLENDER_ARCH }}"', '"x86_64"'), "%post must run fetch_blender.sh"),
    (("title braas-globus render image", "title {{ IMAGE_TITLE }}"),
     "{{ IMAGE_TITLE }} is used but %arguments gives it no default"),
])
def test_recipe_problems_are_detected(tmp_path, replace, expected):
    problems = ct.check_recipe(checkout_copy(tmp_path, replace))
    assert any(expected in p for p in problems), problems


def test_a_new_worker_module_must_be_installed(tmp_path):
    recipe = checkout_copy(tmp_path)
    (recipe.parent.parent / "braas_globus" / "worker" / "new_helper.py").write_text("")
    problems = ct.check_recipe(recipe)
    assert problems == ["%files does not install braas_globus/worker/new_helper.py as "
                        "/opt/braas/worker/new_helper.py"]


def test_build_args_are_checked():
    assert ct.check_build_args({"BLENDER_VERSION": "4.5.14", "BLENDER_ARCH": "aarch64",
                                "BLENDER_SOURCE": "pypi"}) == []
    assert ct.check_build_args({"BLENDER_VERSION": "4.5.14; rm -rf /"})
    assert ct.check_build_args({"BLENDER_ARCH": "riscv64"})
    assert ct.check_build_args({"BLENDER_SOURCE": "pypi; id"})
    assert ct.check_build_args({"BLENDER_URL": "https://example.org"})
    assert ct.check_build_args({"BLENDER_SOURCE": "debian", "DEBIAN_RELEASE": "trixie"}) == []
    assert ct.check_build_args({"DEBIAN_RELEASE": "sid"}) == [
        "DEBIAN_RELEASE='sid': use bookworm or trixie"]


def test_the_aarch64_build_defaults_are_pinned_in_the_table():
    rows, problems = ct.read_checksums(TABLE)
    assert problems == []
    defaults = ct.ARCH_BUILD_ARGS["aarch64"]
    row = ct.pinned_row(rows, defaults["BLENDER_VERSION"], "aarch64", defaults["BLENDER_SOURCE"])
    assert row is not None and row.pinned and row.url == "4.3.2+dfsg-2"


@pytest.mark.parametrize("bind, expected", [
    ("/etc/ssl/certs:/mnt", None),
    ("/etc/ssl/certs", "write SRC:DEST"),
    ("etc/ssl:/mnt", "write SRC:DEST"),
    ("/etc/ssl/certs:/mnt,/root:/root", "write SRC:DEST"),
    ("/etc/ssl/certs:/mnt:rw", "write SRC:DEST"),
    ("/no/such/folder:/mnt", "/no/such/folder does not exist"),
])
def test_build_binds_are_checked(bind, expected):
    problems = ct.check_build_binds([bind])
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("section", ["post", "test", "runscript", "environment"])
def test_recipe_shell_sections_pass_shellcheck(section):
    recipe = ct.parse_recipe(RECIPE)
    body = ct.render_template(recipe.section_text(section), recipe.arguments)
    done = subprocess.run(["shellcheck", "-s", "sh", "-"], input=body, text=True,
                          capture_output=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_fetch_script_passes_shellcheck():
    done = subprocess.run(["shellcheck", "-s", "sh", str(FETCH)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


# --- the build's checksum step, run here on a local archive -------------------------------

FETCH_TOOLS = ("sh", "curl", "sha256sum", "tar", "xz")


@pytest.fixture
def archive(tmp_path) -> tuple[Path, str]:
    """A small release-shaped archive (a top folder holding a `blender` script) and its sha256."""
    if missing := [t for t in FETCH_TOOLS if shutil.which(t) is None]:
        pytest.skip(f"fetch_blender.sh needs {', '.join(missing)}")
    top = tmp_path / "src" / "blender-9.9.9-linux-x64"
    top.mkdir(parents=True)
    # A STAND-IN `blender`: says its version, and what it renders with when asked (the
    # script fetch_blender.sh runs through --python-expr).
    (top / "blender").write_text("#!/bin/sh\ncase \"$*\" in\n  *--python-expr*) echo "
                                 "'BRAAS_CAPS {\"devices\": [\"CPU\"], \"openimagedenoise\": "
                                 "false}' ;;\n  *) echo 'Blender 9.9.9' ;;\nesac\n")
    (top / "blender").chmod(0o755)
    path = tmp_path / "blender-9.9.9-linux-x64.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        tar.add(top, arcname=top.name)
    sha = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True,
                         check=True).stdout.split()[0]
    return path, sha


def fetch(tmp_path: Path, table: str, version="9.9.9", arch="auto", source="archive"):
    (tmp_path / "table.txt").write_text(table)
    return subprocess.run(["sh", str(FETCH), version, arch, source, str(tmp_path / "table.txt"),
                           str(tmp_path / "dest")], capture_output=True, text=True, timeout=300)


def host_arch() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)


def test_fetch_installs_an_archive_whose_sha256_matches(tmp_path, archive):
    path, sha = archive
    done = fetch(tmp_path, f"9.9.9 {host_arch()} archive {sha} file://{path}\n")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dest" / "blender").is_file()
    assert (tmp_path / "dest" / "BRAAS_BLENDER").read_text().split() == \
        ["9.9.9", host_arch(), "archive", sha, f"file://{path}"]
    # How render_task.py starts it for a task whose Blender is {"kind": "image"}.
    # What it renders with, as the Blender said: the worker refuses a task asking for more.
    assert json.loads((tmp_path / "dest" / "blender.json").read_text()) == \
        {"kind": "executable", "command": [f"{tmp_path}/dest/blender"], "devices": ["CPU"],
         "openimagedenoise": False, "name": f"Blender 9.9.9 ({host_arch()}, from archive)"}
    assert "it renders on CPU ; OpenImageDenoise: no" in done.stdout


@pytest.mark.parametrize("case, expected", [
    ("mismatch", "sha256 mismatch"),
    ("placeholder", "fill in the sha256"),
    ("no-row", "no sha256 pinned for Blender 9.9.9"),
    ("other-source", "no sha256 pinned for Blender 9.9.9 on"),
    ("arch", "unsupported architecture 'sparc'"),
    ("source", "unknown BLENDER_SOURCE 'conda'"),
    ("http", "must be https://"),
    ("version", "is not a release number"),
    ("wrong-version", "reports 'Blender 9.9.9', not Blender 9.9.8"),
])
def test_fetch_refuses_what_is_not_pinned(tmp_path, archive, case, expected):
    path, sha = archive
    arch, version, source = host_arch(), "9.9.9", "archive"
    rows = {"mismatch": f"9.9.9 {arch} archive {'0' * 64} file://{path}",
            "placeholder": f"9.9.9 {arch} archive FILL-IN file://{path}",
            "no-row": f"9.9.8 {arch} archive {sha} file://{path}",
            "other-source": f"9.9.9 {arch} pypi {sha} file://{path}",
            "arch": f"9.9.9 {arch} archive {sha} file://{path}",
            "source": f"9.9.9 {arch} conda {sha} file://{path}",
            "http": f"9.9.9 {arch} archive {sha} http://example.org/blender.tar.xz",
            "version": f"9.9.9 {arch} archive {sha} file://{path}",
            "wrong-version": f"9.9.8 {arch} archive {sha} file://{path}"}
    if case == "arch":
        arch = "sparc"
    if case == "source":
        source = "conda"
    if case == "version":
        version = "9.9"
    if case == "wrong-version":
        version = "9.9.8"
    done = fetch(tmp_path, rows[case] + "\n", version=version, arch=arch, source=source)
    assert done.returncode == 1
    assert expected in done.stderr, done.stderr
    assert not (tmp_path / "dest" / "BRAAS_BLENDER").exists()


APT_STAND_IN = """#!/bin/sh
# A STAND-IN for apt-get (tests only): `download blender=V` writes a small file named as
# apt names the .deb, for the one version the archive has; `install ... FILE.deb` puts a
# stand-in blender on PATH. Every call is logged.
echo "$*" >>"$APT_LOG"
case "$1" in
    download) [ "$2" = "blender=$APT_HAS" ] || {{ echo "E: no $2" >&2; exit 100; }}
              printf 'a stand-in package' >"blender_${{APT_HAS}}_arm64.deb" ;;
    install) cp "$APT_BLENDER" "$APT_BIN/blender" && chmod +x "$APT_BIN/blender" ;;
esac
"""


@pytest.fixture
def debian_archive(tmp_path, archive, monkeypatch) -> str:
    """apt-get as the base's Debian archive, with blender 9.9.9+dfsg-1 in it (STAND-IN);
    returns the sha256 of its .deb."""
    source, _ = archive  # its stand-in blender, as the package installs it
    with tarfile.open(source) as tar:
        tar.extractall(tmp_path / "deb-src", filter="data")
    bin_dir = tmp_path / "apt-bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(APT_STAND_IN.format())
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("APT_LOG", str(tmp_path / "apt.log"))
    monkeypatch.setenv("APT_HAS", "9.9.9+dfsg-1")
    monkeypatch.setenv("APT_BIN", str(bin_dir))
    monkeypatch.setenv("APT_BLENDER", str(tmp_path / "deb-src" / "blender-9.9.9-linux-x64"
                                          / "blender"))
    return hashlib.sha256(b"a stand-in package").hexdigest()


def apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def test_fetch_installs_the_bases_debian_blender_whose_sha256_matches(tmp_path,
                                                                      debian_archive):
    done = fetch(tmp_path, f"9.9.9 {host_arch()} debian {debian_archive} 9.9.9+dfsg-1\n",
                 source="debian")
    assert done.returncode == 0, done.stdout + done.stderr
    assert apt_calls(tmp_path) == ["download", "install"]
    dest = tmp_path / "dest"
    assert (dest / "BRAAS_BLENDER").read_text().split() == \
        ["9.9.9", host_arch(), "debian", debian_archive, "debian:blender=9.9.9+dfsg-1"]
    assert json.loads((dest / "blender.json").read_text()) == {
        "kind": "executable", "command": [f"{dest}/blender"], "devices": ["CPU"],
        "openimagedenoise": False, "name": f"Blender 9.9.9 ({host_arch()}, from debian)"}


@pytest.mark.parametrize("case, expected", [
    ("mismatch", "sha256 mismatch for blender_9.9.9+dfsg-1_arm64.deb"),
    ("not-in-archive", "the base's Debian archive has no blender=9.9.9+dfsg-7"),
    ("no-package-version", "needs the package version as its last field"),
])
def test_fetch_refuses_a_debian_blender_that_is_not_the_pinned_one(tmp_path, debian_archive,
                                                                    case, expected):
    rows = {"mismatch": f"9.9.9 {host_arch()} debian {'0' * 64} 9.9.9+dfsg-1",
            "not-in-archive": f"9.9.9 {host_arch()} debian {debian_archive} 9.9.9+dfsg-7",
            "no-package-version": f"9.9.9 {host_arch()} debian {debian_archive}"}
    done = fetch(tmp_path, rows[case] + "\n", source="debian")
    assert done.returncode == 1
    assert expected in done.stderr, done.stderr
    assert "install" not in apt_calls(tmp_path)  # nothing was installed
    assert not (tmp_path / "dest" / "BRAAS_BLENDER").exists()


def test_fetch_for_aarch64_without_a_row_says_what_to_add(tmp_path):
    for source in ct.SOURCES:
        done = fetch(tmp_path, TABLE.read_text(), version="4.5.14", arch="aarch64", source=source)
        assert done.returncode == 1
        assert f"no sha256 pinned for Blender 4.5.14 on aarch64 from {source}" in done.stderr
        assert f"add a row '4.5.14 aarch64 {source} <sha256> [url]'" in done.stderr


@pytest.fixture
def bpy_wheel(tmp_path) -> tuple[Path, str]:
    """A STAND-IN bpy wheel (a module reporting Blender 9.9.9; it renders nothing), to run
    the pypi branch of fetch_blender.sh offline: venv, pip --require-hashes, version check."""
    path = tmp_path / "wheels" / "bpy-9.9.9-py3-none-any.whl"
    path.parent.mkdir()
    files = {"bpy/__init__.py": "class app:\n    version_string = '9.9.9'\n",
             # Cycles' modules as the stand-in's own: built with CUDA and OptiX, but only
             # CUDA's kernels shipped (so no OptiX), no OIDN.
             "_cycles.py": "def get_device_types():\n    return (True, True, False, False, "
                           "False, False)\n\nwith_openimagedenoise = False\n",
             "cycles/__init__.py": "",
             "cycles/lib/kernel_sm_86.cubin.zst": "a stand-in kernel",
             "bpy-9.9.9.dist-info/METADATA": "Metadata-Version: 2.1\nName: bpy\nVersion: 9.9.9\n",
             "bpy-9.9.9.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                          "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("bpy-9.9.9.dist-info/RECORD",
                       "".join(f"{name},,\n" for name in files) + "bpy-9.9.9.dist-info/RECORD,,\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_installs_a_bpy_wheel_whose_sha256_matches(tmp_path, bpy_wheel):
    path, sha = bpy_wheel
    done = fetch(tmp_path, f"9.9.9 {host_arch()} pypi {sha} file://{path}\n", source="pypi")
    assert done.returncode == 0, done.stdout + done.stderr
    dest = tmp_path / "dest"
    assert (dest / "BRAAS_BLENDER").read_text().split() == \
        ["9.9.9", host_arch(), "pypi", sha, f"file://{path}"]
    described = json.loads((dest / "blender.json").read_text())
    assert described == {"kind": "python", "command": [f"{dest}/bin/python"],
                         "devices": ["CPU", "CUDA"], "openimagedenoise": False,
                         "name": f"Blender 9.9.9 ({host_arch()}, from pypi)"}
    version = subprocess.run([*described["command"], "-c",
                              "import bpy; print(bpy.app.version_string)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "9.9.9"


def test_fetch_refuses_a_bpy_wheel_with_another_sha256(tmp_path, bpy_wheel):
    path, _ = bpy_wheel
    done = fetch(tmp_path, f"9.9.9 {host_arch()} pypi {'ab' * 32} file://{path}\n",
                 source="pypi")
    assert done.returncode == 1
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr
    assert "pip could not install bpy @ file://" in done.stderr
    assert not (tmp_path / "dest" / "BRAAS_BLENDER").exists()
    assert not list((tmp_path / "dest").glob("lib/python*/site-packages/bpy"))


# --- the recipe's %test, run on the host -------------------------------------------------

STAND_IN = '''#!{python}
"""A STAND-IN for the `blender` executable: PyPI bpy behind Blender's command line, so the
recipe's %test can run its executable branch on a machine without the image."""
import subprocess
import sys

argv = sys.argv[1:]
if "--python-expr" in argv:
    code = argv[argv.index("--python-expr") + 1]
    sys.exit(subprocess.call([sys.executable, "-c", code]))
if "-P" in argv:
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    sys.exit(subprocess.call([sys.executable, argv[argv.index("-P") + 1], "--", *rest]))
sys.exit("stand-in blender: unsupported arguments %r" % argv)
'''


@pytest.mark.parametrize("kind", ["python", "executable"])
def test_recipe_test_section_renders_a_frame(tmp_path, kind):
    """%test for either source: a Python with bpy (pypi), or a `blender` (archive; here a
    stand-in over PyPI bpy). /opt/blender is a folder laid out as fetch_blender.sh lays it."""
    bpy = pytest.importorskip("bpy", reason="PyPI bpy is not installed: "
                                          "pip install -e '.[blender]'")
    blender_dir = tmp_path / "opt-blender"
    (blender_dir / "bin").mkdir(parents=True)
    if kind == "python":  # this venv's Python, which has bpy (a symlink would lose the venv)
        (blender_dir / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (blender_dir / "bin" / "python").chmod(0o755)
        described = {"kind": "python", "command": [f"{blender_dir}/bin/python"]}
    else:
        (blender_dir / "blender").write_text(STAND_IN.format(python=sys.executable))
        (blender_dir / "blender").chmod(0o755)
        (blender_dir / "bin" / "blender").symlink_to(blender_dir / "blender")
        described = {"kind": "executable", "command": [f"{blender_dir}/blender"]}
    (blender_dir / "blender.json").write_text(json.dumps(described))
    (blender_dir / "bin" / "python3").symlink_to(sys.executable)
    recipe = ct.parse_recipe(RECIPE)
    version = ".".join(map(str, bpy.app.version))
    script = ct.render_template(recipe.section_text("test"), {"BLENDER_VERSION": version})
    script = script.replace(ct.IMAGE_WORKER_DIR, str(WORKER)).replace("/opt/blender/",
                                                                      f"{blender_dir}/")
    # render_task.py reads {"kind": "image"} from the image's /opt/blender/blender.json, which
    # this host lacks (tests/test_worker.py checks that step); give the task what it holds.
    assert '{"kind": "image"}' in script
    script = script.replace('{"kind": "image"}', json.dumps(described))
    env = {**os.environ, "PATH": f"{blender_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "TMPDIR": str(tmp_path)}
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Blender {version} rendered a 16x16 frame" in done.stdout
    ends = [json.loads(line) for line in done.stdout.splitlines() if '"event": "end"' in line]
    assert ends and ends[-1]["state"] == "FINISHED"


# --- the exec command line ----------------------------------------------------------------

ODD_ROOT = "/scratch/project/p 1/2030-01-01-00000000-a b $(id);`id`&|<>'\"*?"


def binds(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]


@pytest.mark.parametrize("cluster, partition", CLUSTER_PARTITIONS)
def test_exec_argv_for_every_catalog_partition(cluster, partition):
    c = load_catalog().get(cluster)
    p = c.get(partition)
    task = f"{ODD_ROOT}/job/tasks/task-0003.json"
    argv = ct.exec_argv(cluster, partition, "/sw/braas/braas-blender.sif", ODD_ROOT, task)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[:5] == [c.container.runtime, "exec", "--contain", "--pwd", ODD_ROOT]
    assert argv[-5:] == ["/sw/braas/braas-blender.sif", "python3", "-I",
                         "/opt/braas/worker/render_task.py", task]
    # The job folder and the task file stay one element each; nothing else carries its text.
    assert argv.count(ODD_ROOT) == 2 and argv.count(task) == 1
    assert all(a in (ODD_ROOT, task) for a in argv if "$(" in a or "`" in a or ";" in a)
    # GPU flags by vendor, on GPU partitions only.
    flags = argv[5:argv.index("/sw/braas/braas-blender.sif")]
    vendor = c.gpu_vendor if p.kind == "gpu" else None
    assert ("--nv" in flags) == (vendor == "nvidia")
    assert ("--rocm" in flags) == (vendor == "amd")
    expected_binds = (["/dev/dri"] if vendor == "intel" else []) + [ODD_ROOT]
    assert binds(argv) == expected_binds  # only the job folder (and Intel's GPU devices)
    assert flags == [*c.container_flags_for(partition), "--bind", ODD_ROOT]


@pytest.mark.parametrize("cluster, partition", CLUSTER_PARTITIONS)
def test_compute_task_runs_the_same_argv(cluster, partition, tmp_path, monkeypatch):
    """Drift guard: compute_task.py (sent by source) builds what exec_argv builds."""
    c = load_catalog().get(cluster)
    image = tmp_path / "braas-blender.sif"
    image.write_bytes(b"SIF")
    root = tmp_path / "scratch with space" / "2030-01-01-00000000-demo"
    # As the endpoint template's worker_init exports them from the catalog.
    monkeypatch.setenv("BRAAS_IMAGE", str(image))
    monkeypatch.setenv("BRAAS_CONTAINER_RUNTIME", c.container.runtime)
    monkeypatch.setenv("BRAAS_CONTAINER_FLAGS", " ".join(c.container_flags_for(partition)))
    for name in ("BRAAS_BLENDER", "BRAAS_BLENDER_PYTHON", "BRAAS_WORKER_DIR"):
        monkeypatch.delenv(name, raising=False)
    seen: list[list[str]] = []

    envs: list[dict] = []

    def fake_run(argv, **kwargs):
        seen.append(argv)
        envs.append(kwargs["env"])
        end = {"event": "end", "state": "FINISHED", "missing": "", "reason": ""}
        return subprocess.CompletedProcess(argv, 0, json.dumps(end) + "\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    task = {"task": 3, "frames": "1-2", "scene": "in/scene.blend",
            "blender": {"kind": "executable", "command": ["blender"]}}
    record = compute_task.render_on_worker(task, str(root))
    assert record["state"] == "FINISHED"
    task_file = root / "job" / "tasks" / "task-0003.json"
    assert seen == [ct.exec_argv(cluster, partition, image, root, task_file)]
    # GPU kernel caches live in the job folder, the one path bound into the container.
    for name in ("CUDA_CACHE_PATH", "OPTIX_CACHE_PATH"):
        assert Path(envs[0][name]).is_relative_to(root / "job" / "cache"), name
    assert envs[0]["BRAAS_IMAGE"] == str(image)  # the rest of the environment passes through


def test_the_centres_device_and_thread_share_fill_what_a_task_leaves_open(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("BRAAS_WORKER_DIR", str(WORKER))
    monkeypatch.delenv("BRAAS_IMAGE", raising=False)
    monkeypatch.setenv("BRAAS_BLENDER", "/sw/blender/blender")
    monkeypatch.setenv("BRAAS_CYCLES_DEVICE", "CUDA")  # as a GPU partition's worker_init sets
    monkeypatch.setenv("BRAAS_CPU_THREADS", "16")
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 0, '{"event": "end", "state": "FINISHED"}', ""))
    root = tmp_path / "job"
    written = root / "job" / "tasks" / "task-0001.json"
    compute_task.render_on_worker({"task": 1, "frames": "1", "scene": "in/s.blend"}, str(root))
    assert {k: json.loads(written.read_text())[k] for k in ("device", "threads")} == \
        {"device": "CUDA", "threads": 16}
    # What the user chose stays.
    compute_task.render_on_worker({"task": 1, "frames": "1", "scene": "in/s.blend",
                                   "device": "CPU", "threads": 4}, str(root))
    assert {k: json.loads(written.read_text())[k] for k in ("device", "threads")} == \
        {"device": "CPU", "threads": 4}


def test_a_centres_own_gpu_cache_setting_wins(tmp_path, monkeypatch):
    image = tmp_path / "braas-blender.sif"
    image.write_bytes(b"SIF")
    monkeypatch.setenv("BRAAS_IMAGE", str(image))
    monkeypatch.setenv("CUDA_CACHE_PATH", "/local/nvcache")  # set by the centre's worker_init
    envs: list[dict] = []

    def fake_run(argv, **kwargs):
        envs.append(kwargs["env"])
        return subprocess.CompletedProcess(argv, 0, '{"event": "end", "state": "FINISHED"}', "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    task = {"task": 1, "frames": "1", "scene": "in/scene.blend", "blender": {"kind": "image"}}
    compute_task.render_on_worker(task, str(tmp_path / "job"))
    assert envs[0]["CUDA_CACHE_PATH"] == "/local/nvcache"
    assert envs[0]["OPTIX_CACHE_PATH"] == str(tmp_path / "job" / "job" / "cache" / "optix")


def test_compute_task_refuses_a_job_folder_apptainer_cannot_bind(tmp_path, monkeypatch):
    image = tmp_path / "braas-blender.sif"
    image.write_bytes(b"SIF")
    monkeypatch.setenv("BRAAS_IMAGE", str(image))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not run"))
    task = {"task": 1, "frames": "1", "scene": "in/scene.blend",
            "blender": {"kind": "executable", "command": ["blender"]}}
    record = compute_task.render_on_worker(task, str(tmp_path / "a,b"))
    assert record["state"] == "FAILED" and "cannot bind" in record["reason"]


@pytest.mark.parametrize("kwargs, expected", [
    ({"job_root": "/scratch/a,b"}, "holds ',' or ':'"),
    ({"job_root": "/scratch/a:/etc"}, "holds ',' or ':'"),
    ({"job_root": "scratch/job"}, "must be an absolute path"),
    ({"job_root": "/scratch/../etc"}, "must be an absolute path without '..'"),
    ({"job_root": "/scratch/job\n--nv"}, "control character"),
    ({"task_file": "/etc/passwd"}, "must be inside the job folder"),
    ({"task_file": "/scratch/job/../other/t.json"}, "must be inside the job folder"),
    ({"image": "--writable"}, "must be an absolute path"),
    ({"image": "braas.sif"}, "must be an absolute path"),
    ({"runtime": "bash"}, "container runtime 'bash'"),
    ({"runtime": "bin/apptainer"}, "container runtime 'bin/apptainer'"),
])
def test_exec_argv_refuses_unsafe_input(kwargs, expected):
    args = {"image": "/sw/braas.sif", "job_root": "/scratch/job",
            "task_file": "/scratch/job/job/tasks/task-0001.json", "runtime": None, **kwargs}
    with pytest.raises(UsageError) as err:
        ct.exec_argv("karolina", "qgpu", **args)
    assert expected in str(err.value)


def test_exec_argv_takes_an_absolute_runtime_path():
    argv = ct.exec_argv("lumi", "standard-g", "/sw/braas.sif", "/scratch/project_1/job",
                        "/scratch/project_1/job/job/tasks/task-0001.json",
                        runtime="/usr/bin/singularity")
    assert argv[0] == "/usr/bin/singularity" and "--rocm" in argv


def test_exec_argv_refuses_catalog_flags_it_does_not_know():
    c = load_catalog().get("karolina")
    bad = c.model_copy(update={"container": c.container.model_copy(
        update={"gpu_flags": ("--writable",)})})
    with pytest.raises(RunError, match="--writable"):
        ct.exec_argv(bad, "qgpu", "/sw/braas.sif", "/scratch/job",
                     "/scratch/job/job/tasks/task-0001.json")
    assert ct.exec_argv(bad, "qcpu", "/sw/braas.sif", "/scratch/job",
                        "/scratch/job/job/tasks/task-0001.json")  # CPU: no GPU flags used


# --- image labels ---------------------------------------------------------------------------

def good_labels() -> dict[str, str]:
    return {ct.LABEL_GLOBUS_VERSION: __version__, ct.LABEL_BLENDER_VERSION: PUBLISHED[0],
            ct.LABEL_BLENDER_ARCH: PUBLISHED[1], ct.LABEL_BLENDER_SOURCE: PUBLISHED[2],
            ct.LABEL_BLENDER_SHA256: PUBLISHED[3],
            ct.LABEL_BLENDER_DEVICES: "CPU,CUDA,OPTIX,HIP,ONEAPI", ct.LABEL_BLENDER_OIDN: "yes"}


def test_image_labels_are_checked_against_this_checkout():
    assert ct.check_labels(good_labels(), RECIPE) == []
    assert ct.check_labels({**good_labels(), ct.LABEL_GLOBUS_VERSION: "0.0.1"}, RECIPE)
    assert ct.check_labels({**good_labels(), ct.LABEL_BLENDER_SHA256: "ab" * 32}, RECIPE)
    assert ct.check_labels({**good_labels(), ct.LABEL_BLENDER_VERSION: "4.4.0"}, RECIPE)
    # The wheel's sha256 is pinned for the pypi source only.
    wheel = {**good_labels(), ct.LABEL_BLENDER_SHA256: PUBLISHED_WHEEL[3]}
    assert ct.check_labels(wheel, RECIPE) == [
        f"the image's Blender 4.5.14 (x86_64, from archive) has sha256 {PUBLISHED_WHEEL[3]}; "
        f"blender-sha256.txt pins {PUBLISHED[3]}"]
    assert ct.check_labels({**wheel, ct.LABEL_BLENDER_SOURCE: "pypi"}, RECIPE) == []
    missing = {k: v for k, v in good_labels().items() if k != ct.LABEL_BLENDER_SHA256}
    assert ct.check_labels(missing, RECIPE) == [
        f"the image has no {ct.LABEL_BLENDER_SHA256} label"]


def test_without_apptainer_build_and_inspect_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no runtime on PATH
    image = tmp_path / "image.sif"
    with pytest.raises(RunError, match="neither apptainer nor singularity is on PATH"):
        ct.build(RECIPE, image)
    image.write_bytes(b"SIF")
    with pytest.raises(RunError, match="neither apptainer nor singularity is on PATH"):
        ct.inspect_labels(image)


def test_build_checks_the_pin_before_calling_apptainer(tmp_path):
    with pytest.raises(UsageError, match="no sha256 pinned for Blender 4.5.13"):
        ct.build(RECIPE, tmp_path / "x.sif",
                 {"BLENDER_VERSION": "4.5.13", "BLENDER_ARCH": "x86_64"})
    with pytest.raises(UsageError, match="no sha256 pinned for Blender 4.5.14 on aarch64 "
                                         "from archive"):
        ct.build(RECIPE, tmp_path / "x.sif", {"BLENDER_ARCH": "aarch64"})
    with pytest.raises(UsageError, match="no sha256 pinned for Blender 4.5.14 on aarch64 "
                                         "from pypi"):
        ct.build(RECIPE, tmp_path / "x.sif", {"BLENDER_ARCH": "aarch64", "BLENDER_SOURCE": "pypi"})
    with pytest.raises(UsageError, match="BLENDER_SOURCE='conda'"):
        ct.build(RECIPE, tmp_path / "x.sif", {"BLENDER_SOURCE": "conda"})
    with pytest.raises(UsageError, match="does not exist"):
        ct.build(RECIPE, tmp_path / "x.sif", binds=[f"{tmp_path}/none:/mnt"])
    with pytest.raises(UsageError, match="unknown build argument"):
        ct.build(RECIPE, tmp_path / "x.sif", {"BLENDER_URL": "https://example.org/b.tar.xz"})


FAKE_APPTAINER = '''#!{python}
"""A STAND-IN for `apptainer`, to test how braas-globus calls it (never builds anything):
`build` records its argv and working folder and writes a placeholder image; `inspect`
prints the labels in FAKE_LABELS (JSON) the way apptainer inspect --json prints them."""
import json
import os
import sys

argv = sys.argv[1:]
with open(os.environ["FAKE_APPTAINER_LOG"], "a") as log:
    log.write(json.dumps({{"argv": argv, "cwd": os.getcwd()}}) + "\\n")
if argv[0] == "build":
    print("INFO:    Starting build...")
    if os.environ.get("FAKE_FAIL"):
        print("FATAL:   While performing build: conveyor failed")
        sys.exit(255)
    open(argv[-2], "w").write("SIF")
elif argv[0] == "inspect":
    labels = json.loads(os.environ["FAKE_LABELS"])
    print(json.dumps({{"data": {{"attributes": {{"labels": labels}}}}, "type": "container"}}))
'''


@pytest.fixture
def fake_apptainer(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").write_text(FAKE_APPTAINER.format(python=sys.executable))
    (bin_dir / "apptainer").chmod(0o755)
    log = tmp_path / "apptainer-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_APPTAINER_LOG", str(log))
    monkeypatch.setenv("FAKE_LABELS", json.dumps(good_labels()))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_build_calls_apptainer_in_the_checkout_with_an_argv(tmp_path, fake_apptainer):
    image = tmp_path / "out dir" / "braas-blender.sif"
    image.parent.mkdir()
    lines: list[str] = []
    built = ct.build(RECIPE, image, {"BLENDER_VERSION": "4.5.14"}, log=lines.append)
    assert built == image and image.is_file()
    [call] = calls(fake_apptainer)
    assert call["argv"] == ["build", "--build-arg", "BLENDER_VERSION=4.5.14", str(image),
                            str(RECIPE)]
    assert call["cwd"] == str(REPO)  # %files paths are relative to the checkout
    assert lines[0].startswith("braas: ") and "INFO:    Starting build..." in lines[1]
    with pytest.raises(UsageError, match="pass --force"):
        ct.build(RECIPE, image)
    ct.build(RECIPE, image, force=True, log=lines.append)
    assert calls(fake_apptainer)[-1]["argv"][1:] == ["--force", str(image), str(RECIPE)]
    ct.build(RECIPE, image, {"BLENDER_SOURCE": "pypi"}, force=True, fakeroot=True,
             binds=["/etc/ssl/certs:/mnt"], log=lines.append)
    assert calls(fake_apptainer)[-1]["argv"][1:] == [
        "--build-arg", "BLENDER_SOURCE=pypi", "--force", "--fakeroot",
        "--bind", "/etc/ssl/certs:/mnt", str(image), str(RECIPE)]
    ct.build(RECIPE, image, force=True, compression="zstd", log=lines.append)
    assert calls(fake_apptainer)[-1]["argv"][1:] == [
        "--force", "--mksquashfs-args", "-comp zstd", str(image), str(RECIPE)]
    with pytest.raises(UsageError, match="compression 'xz -Xbcj x86': use gzip, zstd, lz4"):
        ct.build(RECIPE, image, force=True, compression="xz -Xbcj x86")
    assert ct.verify(image, RECIPE) == []
    assert calls(fake_apptainer)[-1]["argv"] == ["inspect", "--json", "--labels", str(image)]


def test_an_aarch64_build_asks_apptainer_for_the_arm64_base(tmp_path, fake_apptainer,
                                                           monkeypatch):
    monkeypatch.setattr("braas_globus.container_build.machine_arch", lambda: "x86_64")
    monkeypatch.setattr("braas_globus.container_build.emulation_problem", lambda arch: None)
    image = tmp_path / "braas-blender-aarch64.sif"
    ct.build(RECIPE, image, arch="aarch64", fakeroot=True, log=lambda line: None)
    assert calls(fake_apptainer)[-1]["argv"] == [
        "build", "--arch", "arm64", "--build-arg", "BLENDER_ARCH=aarch64",
        "--build-arg", "BLENDER_SOURCE=debian", "--build-arg", "BLENDER_VERSION=4.3.2",
        "--build-arg", "DEBIAN_RELEASE=trixie", "--fakeroot", str(image), str(RECIPE)]
    # A build argument still wins over the architecture's default (and must be pinned).
    with pytest.raises(UsageError, match="no sha256 pinned for Blender 4.5.14 on aarch64 "
                                         "from debian"):
        ct.build(RECIPE, image, {"BLENDER_VERSION": "4.5.14"}, arch="aarch64", force=True)
    with pytest.raises(UsageError, match="--arch 'riscv64': use x86_64 or aarch64"):
        ct.build(RECIPE, image, arch="riscv64", force=True)


def test_building_for_another_architecture_needs_qemus_handler(tmp_path, fake_apptainer,
                                                                monkeypatch):
    assert ct.emulation_problem(ct.machine_arch()) is None
    problem = ct.emulation_problem("sparc64")  # no qemu-sparc64 handler on any test machine
    assert problem is not None and "register qemu's sparc64 handler first" in problem
    other = "aarch64" if ct.machine_arch() == "x86_64" else "x86_64"
    handler = Path(f"/proc/sys/fs/binfmt_misc/qemu-{other}")
    registered = handler.is_file() and handler.read_text().startswith("enabled")
    assert (ct.emulation_problem(other) is None) == registered
    monkeypatch.setattr("braas_globus.container_build.emulation_problem",
                        lambda arch: None if arch == ct.machine_arch() else f"no qemu-{arch}")
    with pytest.raises(UsageError, match=f"no qemu-{other}"):
        ct.build(RECIPE, tmp_path / "x.sif", arch=other)
    assert not fake_apptainer.exists()  # apptainer never ran


def test_a_failed_build_is_a_run_error(tmp_path, fake_apptainer, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(RunError, match="exit code 255: FATAL:   While performing build"):
        ct.build(RECIPE, tmp_path / "x.sif", log=lambda line: None)


def root_lacks_a_capability() -> bool:
    """True as root on a host (such as this VM) whose capability bounding set is not full."""
    if os.geteuid() != 0:
        return False
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = next(int(line.split()[1], 16) for line in
                    Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("CapBnd:"))
    return bounding != (1 << (last + 1)) - 1


@pytest.mark.slow
def test_a_root_build_that_apptainer_refuses_says_to_use_fakeroot(tmp_path):
    if ct.find_runtime() is None:
        pytest.skip("apptainer is not installed here")
    if not root_lacks_a_capability():
        pytest.skip("not root, or root here holds every capability: a root build would work")
    with pytest.raises(RunError) as err:
        ct.build(RECIPE, tmp_path / "x.sif", {"BLENDER_SOURCE": "pypi"}, log=lambda line: None)
    assert str(err.value).endswith("build with --fakeroot"), err.value
    assert not (tmp_path / "x.sif").exists()


def test_verify_names_wrong_image_labels(tmp_path, fake_apptainer, monkeypatch):
    image = tmp_path / "old.sif"
    image.write_bytes(b"SIF")
    monkeypatch.setenv("FAKE_LABELS", json.dumps({**good_labels(),
                                                  ct.LABEL_GLOBUS_VERSION: "0.0.1"}))
    assert ct.verify(image, RECIPE) == [
        f"the image holds braas-globus 0.0.1; this checkout is {__version__}: rebuild it so "
        "the worker code matches"]


# --- the CLI ----------------------------------------------------------------------------------

def invoke(args: list[str]) -> int:
    """`braas-globus container ...`: through cli.main once it mounts container_app."""
    from braas_globus import cli

    if any(group.name == "container" for group in cli.app.registered_groups):
        return cli.main(["container", *args])
    app = typer.Typer()
    app.add_typer(container_app, name="container")
    try:
        result = app(args=["container", *args], prog_name="braas-globus", standalone_mode=False)
    except Exception as err:  # click's usage errors, as cli.main turns them into exit 2
        if hasattr(err, "exit_code") and hasattr(err, "format_message"):
            print(f"error: {err.format_message()}", file=sys.stderr)
            return 2
        raise
    return result if isinstance(result, int) else 0


def test_cli_verify_checks_the_recipe(home, capsys):
    assert invoke(["verify", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["recipe_problems"] == []
    assert result["recipe"] == str(RECIPE)


def test_cli_verify_reports_a_broken_recipe(home, tmp_path, capsys):
    broken = checkout_copy(tmp_path, ("BLENDER_VERSION=4.5.14", "BLENDER_VERSION=4.5.13"))
    assert invoke(["verify", "--recipe", str(broken)]) == 1
    captured = capsys.readouterr()
    assert "BLENDER_VERSION=4.5.13 has no x86_64 archive row" in captured.out
    assert captured.err.startswith("error: ")


def test_cli_verify_skips_the_image_without_apptainer(home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no runtime on PATH, even where one is installed
    image = tmp_path / "braas.sif"
    image.write_bytes(b"SIF")
    assert invoke(["verify", str(image), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["image_checked"] is False
    assert "neither apptainer nor singularity is on PATH" in result["skipped"]


def test_cli_errors_become_exit_codes(home, tmp_path, capsys):
    assert invoke(["inspect", str(tmp_path / "missing.sif")]) == 2
    assert "no image at" in capsys.readouterr().err
    assert invoke(["build", str(RECIPE), str(tmp_path / "x.sif"), "--build-arg", "NOPE"]) == 2
    assert "write KEY=VALUE" in capsys.readouterr().err
    assert invoke(["build", str(RECIPE), str(tmp_path / "x.sif"),
                   "--build-arg", "BLENDER_VERSION=4.5.13"]) == 2
    assert "no sha256 pinned for Blender 4.5.13" in capsys.readouterr().err


def test_cli_build_inspect_verify_with_a_stand_in_apptainer(home, tmp_path, fake_apptainer,
                                                            capsys):
    image = tmp_path / "braas-blender.sif"
    assert invoke(["build", str(RECIPE), str(image), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["image"] == str(image) and built["problems"] == []
    assert built["labels"][ct.LABEL_BLENDER_SHA256] == PUBLISHED[3]
    assert invoke(["inspect", str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == good_labels()
    assert invoke(["verify", str(image), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["image_checked"] is True and result["ok"] is True


# --- the real image: only where apptainer exists ------------------------------------------
# The image comes from conftest.render_image: built once per session from the unchanged
# recipe, with the pinned bpy wheel (this machine reaches PyPI, not download.blender.org).

def image_job(tmp_path: Path, frames: int) -> Path:
    root = tmp_path / "job root"  # a space: one argv element, never a shell word
    (root / "job" / "tasks").mkdir(parents=True)
    build_scene(root / "in", "--frames", str(frames))  # in/scene.blend, as staging leaves it
    return root


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first user of render_image waits for its build
def test_the_render_image_verifies_and_says_what_it_holds(render_image):
    assert ct.verify(render_image, RECIPE) == []
    labels = ct.inspect_labels(render_image)
    assert (labels[ct.LABEL_BLENDER_VERSION], labels[ct.LABEL_BLENDER_ARCH],
            labels[ct.LABEL_BLENDER_SOURCE], labels[ct.LABEL_BLENDER_SHA256]) == PUBLISHED_WHEEL_5
    assert labels[ct.LABEL_GLOBUS_VERSION] == __version__
    # The worker code in the image is this checkout's, byte for byte.
    for module in sorted(WORKER.glob("*.py")):
        inside = subprocess.run([ct.find_runtime(), "exec", str(render_image), "cat",
                                 f"{ct.IMAGE_WORKER_DIR}/{module.name}"],
                                capture_output=True, text=True, check=True).stdout
        assert inside == module.read_text(), module.name
    done = subprocess.run([ct.find_runtime(), "test", str(render_image)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Blender 5.0.1 rendered a 16x16 frame through render_task.py" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("cluster, partition", [
    ("karolina", "qcpu"),
    ("karolina", "qgpu"),  # --nv: no NVIDIA driver here, so Apptainer binds nothing; CPU render
    ("lumi", "small-g"),  # --rocm, likewise
])
def test_a_task_renders_in_the_image_with_only_the_job_folder_bound(render_image, tmp_path,
                                                                    cluster, partition):
    root = image_job(tmp_path, frames=2)
    task_file = root / "job" / "tasks" / "task-0001.json"
    task_file.write_text(json.dumps({"task": 1, "frames": "1-2", "scene": "in/scene.blend",
                                     "device": "CPU", "blender": {"kind": "image"}}))
    argv = ct.exec_argv(cluster, partition, render_image, root, task_file,
                        runtime=ct.find_runtime())
    assert ("--nv" in argv, "--rocm" in argv) == (partition == "qgpu", partition == "small-g")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in sorted((root / "out").glob("*.png"))] == ["000001.png", "000002.png"]
    assert all(is_valid_image(p) for p in (root / "out").glob("*.png"))
    end = json.loads(done.stdout.strip().splitlines()[-1])
    assert end["state"] == "FINISHED"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_centres_worker_renders_in_the_image(render_image, tmp_path, monkeypatch):
    """render_on_worker, as a centre's endpoint runs it, with BRAAS_IMAGE from worker_init."""
    root = image_job(tmp_path, frames=3)
    monkeypatch.setenv("BRAAS_IMAGE", str(render_image))
    monkeypatch.setenv("BRAAS_CONTAINER_RUNTIME", ct.find_runtime())
    monkeypatch.setenv("BRAAS_CONTAINER_FLAGS", "")
    for name in ("BRAAS_BLENDER", "BRAAS_BLENDER_PYTHON", "BRAAS_WORKER_DIR"):
        monkeypatch.delenv(name, raising=False)
    task = {"task": 2, "frames": "1-3", "scene": "in/scene.blend", "device": "CPU",
            "runtime": "image", "blender": {"kind": "executable", "command": ["/bin/false"]}}
    record = compute_task.render_on_worker(task, str(root))
    assert record["state"] == "FINISHED" and record["runtime"] == "image", record
    assert [p.name for p in sorted((root / "out").glob("*.png"))] == \
        ["000001.png", "000002.png", "000003.png"]
    # The centre's image decided which Blender ran, not the client's task.
    written = json.loads((root / "job" / "tasks" / "task-0002.json").read_text())
    assert written["blender"] == {"kind": "image"}
