"""Presets: where a job renders. ``local`` (this machine) is built in and the default."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NotFoundError


@dataclass(frozen=True)
class Preset:
    name: str
    backend: str
    description: str


LOCAL = Preset("local", "local", "this machine, with the embedded Blender (no cluster needed)")


def list_presets() -> list[Preset]:
    return [LOCAL]


def get_preset(name: str) -> Preset:
    for preset in list_presets():
        if preset.name == name:
            return preset
    known = ", ".join(p.name for p in list_presets())
    raise NotFoundError(f"unknown preset '{name}'; known presets: {known} "
                        "(`braas-globus presets` lists them)")
