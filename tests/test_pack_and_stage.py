"""Packing with blender-asset-tracer, and the content-addressed local stage."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from blender_asset_tracer import trace

from braas_globus.pack import MissingAssetsError, PackPlan, build_manifest
from braas_globus.spec import Mode
from braas_globus.stage import LocalStager

BLENDER = {"kind": "python", "command": [sys.executable]}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def pack(scene: Path, mode: Mode, target: Path) -> Path:
    plan = PackPlan(scene, mode, target)
    try:
        assert plan.strategise(BLENDER) == []
        return target / plan.execute()
    finally:
        plan.close()


def external_files(blend: Path) -> list[Path]:
    return sorted(p for usage in trace.deps(blend) for p in usage.files())


def test_missing_texture_is_found_with_the_users_path(scene, tmp_path):
    blend = scene("missing")
    plan = PackPlan(blend, Mode.DIRECTORY, tmp_path / "stage")
    missing = plan.strategise(BLENDER)  # in private staging: no job exists yet
    plan.close()
    assert missing == [blend.parent / "textures" / "missing" / "not_there.png"]
    error = MissingAssetsError(blend, missing)
    assert "textures/missing/not_there.png" in str(error) and "--allow-missing" in str(error)


def test_directory_mode_keeps_the_folder_structure_with_relative_paths(scene, tmp_path):
    blend = scene("anim6")
    before = {path: digest(blend.parent / path) for path in tree(blend.parent)}
    staged = pack(blend, Mode.DIRECTORY, tmp_path / "stage")
    assert tree(tmp_path / "stage") == ["scene.blend", "textures/ground/grid.png",
                                        "textures/props/wood/checker.png"]
    # Every asset the staged .blend points to resolves inside the stage.
    assert [p.relative_to(tmp_path / "stage").as_posix() for p in external_files(staged)] == \
        ["textures/ground/grid.png", "textures/props/wood/checker.png"]
    assert {path: digest(blend.parent / path) for path in tree(blend.parent)} == before


def test_packed_mode_puts_the_images_inside_one_blend(scene, tmp_path):
    blend = scene("anim6")
    before = digest(blend)
    staged = pack(blend, Mode.PACKED, tmp_path / "stage")
    assert tree(tmp_path / "stage") == ["scene.blend"]
    assert external_files(staged) == []
    assert staged.stat().st_size > blend.stat().st_size  # the textures are inside now
    assert digest(blend) == before  # the user's file is untouched


def test_manifest_lists_sha256_and_size_of_every_staged_file(scene, tmp_path):
    pack(scene("anim6"), Mode.DIRECTORY, tmp_path / "stage")
    manifest = build_manifest(tmp_path / "stage")
    assert sorted(manifest) == tree(tmp_path / "stage")
    for path, entry in manifest.items():
        file = tmp_path / "stage" / path
        assert entry.sha256 == digest(file) and entry.size == file.stat().st_size


def test_local_stage_stores_each_content_once(scene, tmp_path):
    blend = scene("anim6")
    stager = LocalStager(tmp_path / "objects")
    first = pack(blend, Mode.DIRECTORY, tmp_path / "stage1").parent
    sent_first = stager.stage(first, build_manifest(first), tmp_path / "job1")
    assert sent_first == sum(p.stat().st_size for p in first.rglob("*") if p.is_file())
    assert tree(tmp_path / "job1" / "in") == tree(first)

    second = pack(blend, Mode.DIRECTORY, tmp_path / "stage2").parent
    assert stager.stage(second, build_manifest(second), tmp_path / "job2") == 0  # unchanged
    grid = tmp_path / "job2" / "in" / "textures" / "ground" / "grid.png"
    assert grid.stat().st_nlink == 3  # the object, job1 and job2 share one copy

    texture = blend.parent / "textures" / "props" / "wood" / "checker.png"
    texture.write_bytes(texture.read_bytes() + b"\0")  # the artist changes one texture
    third = pack(blend, Mode.DIRECTORY, tmp_path / "stage3").parent
    assert stager.stage(third, build_manifest(third), tmp_path / "job3") == texture.stat().st_size


def test_staged_objects_are_read_only(scene, tmp_path):
    stage = pack(scene("anim6"), Mode.DIRECTORY, tmp_path / "stage").parent
    stager = LocalStager(tmp_path / "objects")
    stager.stage(stage, build_manifest(stage), tmp_path / "job")
    for path in (tmp_path / "objects").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o222 == 0


@pytest.mark.parametrize("mode", [Mode.DIRECTORY, Mode.PACKED])
def test_allow_missing_still_packs_what_exists(scene, tmp_path, mode):
    blend = scene("missing")
    plan = PackPlan(blend, mode, tmp_path / "stage")
    assert len(plan.strategise(BLENDER)) == 1
    staged = tmp_path / "stage" / plan.execute()
    plan.close()
    assert staged.exists()
    if mode is Mode.PACKED:
        assert tree(tmp_path / "stage") == ["scene.blend"]
    else:
        assert "textures/ground/grid.png" in tree(tmp_path / "stage")


@pytest.mark.parametrize("mode", [Mode.DIRECTORY, Mode.PACKED])
def test_staged_copies_are_no_more_readable_than_their_sources(scene, tmp_path, mode):
    import stat

    blend = scene("anim6")
    private = [blend, blend.parent / "textures" / "ground" / "grid.png",
               blend.parent / "textures" / "props" / "wood" / "checker.png"]
    for path in private:
        path.chmod(0o600)
    plan = PackPlan(blend, mode, tmp_path / "staging" / "1", cache_dir=tmp_path / "cache")
    try:
        assert plan.strategise(BLENDER) == []
        plan.execute()
        stage = tmp_path / "staging" / "1"
        LocalStager(tmp_path / "objects").stage(stage, build_manifest(stage), tmp_path / "job")
    finally:
        plan.close()
    copies = [p for top in ("staging", "objects", "cache", "job")
              for p in (tmp_path / top).rglob("*") if p.is_file()]
    assert copies and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in copies), \
        {str(p): oct(p.stat().st_mode) for p in copies}
    for folder in (tmp_path / "objects", tmp_path / "cache", tmp_path / "staging"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
