"""Presets: where a job renders.

``local`` (this machine, the embedded default) is built in. A cluster preset names a
cluster and partition from the catalog, the user's allocation, the centre's Globus
Compute endpoint and Globus collection (with the working directory on it), and the
user's own collection (Globus Connect Personal) that holds ``BRAAS_HOME``. Cluster
presets are kept in ``BRAAS_HOME/presets.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .catalog import load_catalog
from .disk import write_atomically
from .errors import NotFoundError, UsageError

_NAME = r"^[a-z0-9][a-z0-9_-]{0,47}$"


class LocalPreset(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "local"
    backend: Literal["local"] = "local"
    description: str = "this machine, with the embedded Blender (no cluster needed)"
    default_device: str = "CPU"


class ClusterPreset(BaseModel):
    """A partition of a centre, reached through Globus Compute and Globus Transfer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=_NAME)]
    cluster: str
    partition: str
    account: str
    endpoint_id: UUID  # the centre's Globus Compute endpoint
    collection_id: UUID  # the centre's Globus collection
    remote_dir: str  # the working directory on that collection
    local_collection_id: UUID  # the user's collection (Globus Connect Personal)
    local_dir: str | None = None  # BRAAS_HOME as the user's collection sees it
    # A Globus Connect Server mapped collection needs a data_access consent at login;
    # guest collections do not (and asking for one fails the login).
    mapped_collection: bool = True
    # Where Blender runs on the node: in the centre's Apptainer image, or on the host
    # (a centre that installs Blender itself). Recorded in each job (job/presets.json).
    runtime: Literal["image", "host"] = "image"
    # The Blender that renders there (the image's org.braas.blender.version label, or the
    # host's), when the user knows it: a scene saved by a newer one is refused at submit.
    blender_version: Annotated[str | None, Field(pattern=r"^\d{1,2}\.\d{1,3}(\.\d{1,3})?$")] = None
    nodes_per_block: Annotated[int, Field(ge=1, le=1024)] = 1
    max_blocks: Annotated[int, Field(ge=1, le=1024)] = 1
    backend: Literal["globus"] = "globus"

    @field_validator("remote_dir")
    @classmethod
    def _absolute_dir(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not (value.startswith("/") or value.startswith("/~/")) or ".." in path.parts:
            raise ValueError("must be an absolute path on the collection, without '..'")
        if re.search(r"[\x00-\x1f]", value):
            raise ValueError("must not hold control characters")
        return str(path)

    @model_validator(mode="after")
    def _check_against_catalog(self) -> "ClusterPreset":
        cluster = load_catalog().get(self.cluster)
        cluster.get(self.partition)
        if not re.match(cluster.account_pattern, self.account):
            raise ValueError(f"account {self.account!r} does not look like a "
                             f"{cluster.title} project (pattern {cluster.account_pattern})")
        return self

    @property
    def description(self) -> str:
        cluster = load_catalog().get(self.cluster)
        return f"{cluster.title}, partition {self.partition}, project {self.account}"

    @property
    def default_device(self) -> str:
        return load_catalog().get(self.cluster).cycles_device_for(self.partition)


Preset = LocalPreset | ClusterPreset
LOCAL = LocalPreset()


def _presets_file(home: Path) -> Path:
    return home / "presets.json"


def load_cluster_presets(home: Path) -> dict[str, ClusterPreset]:
    path = _presets_file(home)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {name: ClusterPreset(**fields) for name, fields in raw.items()}
    except (ValueError, TypeError) as err:
        raise UsageError(f"{path} is damaged ({_first_error(err)}); fix or remove it") from None


def save_cluster_presets(home: Path, presets: dict[str, ClusterPreset]) -> None:
    path = _presets_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({n: p.model_dump(mode="json") for n, p in presets.items()}, indent=1)
    write_atomically(path, lambda partial: partial.write_text(text))


def list_presets(home: Path) -> list[Preset]:
    return [LOCAL, *load_cluster_presets(home).values()]


def get_preset(name: str, home: Path) -> Preset:
    for preset in list_presets(home):
        if preset.name == name:
            return preset
    known = ", ".join(p.name for p in list_presets(home))
    raise NotFoundError(f"unknown preset '{name}'; known presets: {known} "
                        "(`braas-globus presets list`; add one with `braas-globus presets add`)")


def add_preset(home: Path, **fields: object) -> ClusterPreset:
    """Validate and store a cluster preset; UsageError naming the field when it is wrong."""
    if fields.get("name") == LOCAL.name:
        raise UsageError("'local' is the built-in preset; choose another name")
    try:
        preset = ClusterPreset(**fields)
    except ValidationError as err:
        raise UsageError(_first_error(err)) from None
    presets = load_cluster_presets(home)
    if preset.name in presets:
        raise UsageError(f"preset '{preset.name}' exists; remove it first")
    save_cluster_presets(home, {**presets, preset.name: preset})
    return preset


def remove_preset(home: Path, name: str) -> None:
    presets = load_cluster_presets(home)
    if name not in presets:
        get_preset(name, home)  # the right message for 'local' or an unknown name
        raise UsageError("the built-in 'local' preset cannot be removed")
    save_cluster_presets(home, {n: p for n, p in presets.items() if n != name})


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "preset"
        return f"{field}: {first['msg'].removeprefix('Value error, ')}"
    return str(err)
