"""A scene stays inside its project: a hostile .blend cannot make a submit send files.

The scenes are real (bpy, tests/scenes/make_real_scene.py ``named_textures``): a cube
whose images are named by absolute paths, ``//../`` paths and links, as someone else's
.blend could name them. What a user checks: the submit is refused with one line naming
the file, nothing of the job exists, and the file's bytes are nowhere under BRAAS_HOME.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from .test_cli_bad_input import nothing_written

SCENE_MAKER = Path(__file__).parent / "scenes" / "make_real_scene.py"
SECRET = b"braas-test-secret-7f3a"  # in every file a hostile scene names


def tiny_png(path: Path, rgb=(200, 30, 30)) -> Path:
    """A valid 4x4 PNG that also carries SECRET (in a text chunk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(rgb) * 4 for _ in range(4))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2,
                                                                         0, 0, 0))
                     + chunk(b"tEXt", b"note\0" + SECRET)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def named_textures(folder: Path, *paths: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "paths.txt").write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
    subprocess.run([sys.executable, str(SCENE_MAKER), "--", "named_textures", str(folder)],
                   check=True, capture_output=True)
    return folder / "scene.blend"


def secret_under(home: Path) -> list[Path]:
    """Copies of a secret under BRAAS_HOME (the tokens file itself aside)."""
    return [p for p in home.rglob("*") if p.is_file() and SECRET in p.read_bytes()
            and p != home / "globus" / "tokens.json"]


def hostile_case(case: str, user: Path, home: Path) -> str:
    """Make what the case's scene names; return the path as the scene writes it."""
    if case == "absolute path outside":
        return str(tiny_png(user / "elsewhere" / "secret.png"))
    if case == "../ path outside":
        tiny_png(user / "elsewhere" / "secret.png")
        return "//../elsewhere/secret.png"
    if case == "link to /etc/passwd":
        link = user / "proj" / "textures" / "wood.png"
        link.parent.mkdir(parents=True)
        link.symlink_to("/etc/passwd")
        return "//textures/wood.png"
    if case == "Globus tokens in BRAAS_HOME":
        tokens = home / "globus" / "tokens.json"
        tokens.parent.mkdir(parents=True)
        tokens.write_bytes(b'{"refresh_token": "' + SECRET + b'"}')
        return str(tokens)
    if case in ("a hidden folder", "a hidden folder inside a marked root"):
        key = user / ".ssh" / "id_ed25519"
        key.parent.mkdir(parents=True)
        key.write_bytes(SECRET)
        if case.endswith("marked root"):
            (user / ".git").mkdir()  # a dotfiles repository: the home is the project
        return str(key)
    raise AssertionError(case)


CASES = [  # (case, refused even with --allow-outside, words of the one line)
    ("absolute path outside", False, "outside its project folder"),
    ("../ path outside", False, "outside its project folder"),
    ("link to /etc/passwd", True, "system folder /etc"),
    ("Globus tokens in BRAAS_HOME", True, "BRAAS_HOME"),
    ("a hidden folder", True, "hidden"),
    ("a hidden folder inside a marked root", True, "hidden"),
]


@pytest.mark.parametrize("mode", ["directory", "packed"])
@pytest.mark.parametrize(("case", "always", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_scene_sends_nothing_from_outside(cli, home, tmp_path, mode, case, always,
                                                    words):
    user = tmp_path / "user"
    blend = named_textures(user / "proj", hostile_case(case, user, home))
    for extra in ([], ["--allow-outside"]):
        result = cli("submit", blend, "--mode", mode, "--frames", "1", *extra)
        if extra and not always:
            continue  # allowed: shown to render in the test below
        lines = result.stderr.strip().splitlines()
        assert result.code == 2 and len(lines) == 1 and words in lines[0], result.stderr
        assert "--allow-outside" in lines[0] or always
        assert nothing_written(home)
        assert secret_under(home) == []
        staging = home / "staging"
        assert not staging.exists() or not any(staging.iterdir())


def test_allow_outside_sends_a_file_from_outside(cli, home, tmp_path):
    user = tmp_path / "user"
    blend = named_textures(user / "proj", hostile_case("absolute path outside", user, home))
    result = cli("submit", blend, "--mode", "directory", "--frames", "1", "--allow-outside",
                 "--wait", "--json")
    assert result.code == 0, result.stderr
    staged = [p for p in (Path(result.json()["folder"]) / "in").rglob("secret.png")]
    assert len(staged) == 1 and "_outside_project" in staged[0].parts


def studio_project(top: Path, marked: bool) -> Path:
    """shots/scene.blend beside textures/, as studios lay a project out."""
    tiny_png(top / "textures" / "red.png")
    if marked:
        (top / ".blender_project").mkdir(parents=True)
    shot = named_textures(top / "shots", "//../textures/red.png")
    return shot


@pytest.mark.parametrize("mode", ["directory", "packed"])
def test_shots_beside_textures_under_a_marked_root_just_work(cli, home, tmp_path, mode):
    shot = studio_project(tmp_path / "film", marked=True)
    result = cli("submit", shot, "--mode", mode, "--frames", "1", "--wait", "--json")
    assert result.code == 0, result.stderr
    folder = Path(result.json()["folder"])
    staged = sorted(p.relative_to(folder / "in").as_posix()
                    for p in (folder / "in").rglob("*") if p.is_file())
    expected = ["shots/scene.blend", "textures/red.png"] if mode == "directory" \
        else ["shots/scene.blend"]  # packed: the texture is inside the .blend
    assert staged == expected
    assert (folder / "out" / "000001.png").is_file()


def test_an_unmarked_project_names_its_root_on_the_command_line_or_in_the_config(
        cli, home, tmp_path):
    top = tmp_path / "film"
    shot = studio_project(top, marked=False)
    refused = cli("submit", shot, "--mode", "directory", "--frames", "1")
    assert refused.code == 2 and "outside its project folder" in refused.stderr
    named = cli("submit", shot, "--mode", "directory", "--frames", "1", "--project-root",
                top, "--wait", "--json")
    assert named.code == 0, named.stderr
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"project_root = {str(tmp_path)!r}\n")
    configured = cli("submit", shot, "--mode", "directory", "--frames", "1", "--wait")
    assert configured.code == 0, configured.stderr


def test_a_project_root_must_hold_the_scene(cli, home, tmp_path):
    shot = studio_project(tmp_path / "film", marked=False)
    (tmp_path / "other").mkdir()
    result = cli("submit", shot, "--project-root", tmp_path / "other")
    assert result.code == 2 and "is not inside it" in result.stderr
    assert nothing_written(home)
    result = cli("submit", shot, "--project-root", tmp_path / "nope")
    assert result.code == 2 and "not a folder" in result.stderr


def test_an_escaping_link_in_a_copied_folder_is_refused(tmp_path):
    """Folders (caches, sequences) are judged file by file, links followed."""
    from braas_globus.errors import UsageError
    from braas_globus.project import ProjectRules

    root = tmp_path / "proj"
    cache = root / "cache_fluid" / "data"
    cache.mkdir(parents=True)
    (cache / "fluid_0001.vdb").write_bytes(b"x")
    os.symlink("/etc", cache / "more")
    rules = ProjectRules(root / "scene.blend", root, allow_outside=True)
    with pytest.raises(UsageError, match="system folder /etc"):
        rules.check([root / "cache_fluid"])
    os.unlink(cache / "more")
    rules.check([root / "cache_fluid"])
