"""Presets: where a job renders.

``local`` (this machine, the embedded default) is built in. A cluster preset names a
cluster and partition from the catalog, the user's allocation, the centre's Globus
Compute endpoint and Globus collection (with the working directory on it), and the
user's own collection (Globus Connect Personal) that holds ``BRAAS_HOME``. Cluster
presets are kept in ``BRAAS_HOME/presets.json``.

Paths as each side sees them: ``remote_dir`` is the working directory as the centre's
*collection* names it (Transfer's paths), ``worker_dir`` the same folder as the centre's
*nodes* see it (the Compute worker's paths). They differ where the collection has a base
path (a GCSv5 mapped collection's ``collection_base_path``, a guest collection's root on
its host) or where ``remote_dir`` is home-relative (``/~/...``). ``presets test`` proves the
mapping with a probe file (preset_probe.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .catalog import load_catalog
from .disk import write_atomically
from .errors import NotFoundError, UsageError
from .spec import PRESET_NAME

_NAME = PRESET_NAME  # spec.py holds the rule

#: What the centre's collection is, as Globus's Transfer service calls it (entity_type and
#: high_assurance; preset_check.collection_facts reads them). Only a non-high-assurance
#: GCSv5 mapped collection ("mapped") needs a data_access consent at login.
CollectionKind = Literal["mapped", "high_assurance_mapped", "guest", "personal"]


def _posix_dir(value: str, what: str) -> str:
    path = PurePosixPath(value)
    if not value.startswith("/") or ".." in path.parts:
        raise ValueError(f"must be an absolute path {what}, without '..'")
    if not value.isprintable():  # control characters, and line breaks such as U+2028
        raise ValueError("must not hold control characters")
    return str(path)


def is_home_relative(path: str) -> bool:
    """A collection path under ``/~/`` (the user's home on that collection)."""
    return path == "/~" or path.startswith("/~/")


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
    remote_dir: str  # the working directory on that collection (a collection path)
    # The same folder as the centre's nodes (the Compute worker) see it; None: the same
    # path as remote_dir. A home-relative remote_dir (/~/...) needs it.
    worker_dir: str | None = None
    local_collection_id: UUID  # the user's collection (Globus Connect Personal)
    local_dir: str | None = None  # BRAAS_HOME as the user's collection sees it
    # True: the centre's collection needs a data_access consent at login (a GCSv5 mapped
    # collection that is not high assurance); guest, personal and high-assurance
    # collections do not (and asking for one fails the login). Set from collection_kind
    # when that is known.
    mapped_collection: bool = True
    # What Globus says the centre's collection is, read when the preset was added; None:
    # not read (added while not logged in, or by an older braas-globus).
    collection_kind: CollectionKind | None = None
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
        return _posix_dir(value, "on the collection")

    @field_validator("worker_dir")
    @classmethod
    def _absolute_worker_dir(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if is_home_relative(value) or value.startswith("~"):
            raise ValueError("must be the folder as the centre's nodes see it (e.g. "
                             "/home/you/braas), not a /~/ collection path")
        return _posix_dir(value, "on the centre's nodes")

    @model_validator(mode="before")
    @classmethod
    def _kind_decides_consent(cls, data: object) -> object:
        # One truth: when Globus's kind is known, it decides the data_access consent.
        if isinstance(data, dict) and data.get("collection_kind") is not None:
            return {**data, "mapped_collection": data["collection_kind"] == "mapped"}
        return data

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
    def worker_dir_known(self) -> bool:
        """Does this preset know its working directory as the centre's nodes see it?"""
        return self.worker_dir is not None or not is_home_relative(self.remote_dir)

    def worker_path(self, *parts: str) -> str:
        """``parts`` under the working directory, as the centre's nodes (the Compute worker)
        see it: worker_dir, else remote_dir. UsageError for a home-relative remote_dir
        without a worker_dir (the nodes cannot resolve /~/)."""
        if not self.worker_dir_known:
            raise UsageError(
                f"preset {self.name}: its working directory {self.remote_dir} is relative to "
                "your home on the collection, and the centre's nodes need the folder as they "
                f"see it: `braas-globus presets test {self.name}` finds it; then add the "
                "preset again with --worker-dir")
        return _joined(self.worker_dir or self.remote_dir, parts)

    def remote_path(self, *parts: str) -> str:
        """``parts`` under the working directory, as the centre's collection names it."""
        return _joined(self.remote_dir, parts)

    @property
    def default_device(self) -> str:
        return load_catalog().get(self.cluster).cycles_device_for(self.partition)


def _joined(root: str, parts: tuple[str, ...]) -> str:
    for part in parts:
        if part.startswith("/") or ".." in PurePosixPath(part).parts:
            raise ValueError(f"{part!r} is not a relative path inside the working directory")
    return str(PurePosixPath(root, *parts))


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


#: Stands in for a remote_dir not chosen yet, while the other fields are checked.
_NOT_CHOSEN = "/"


def check_new_preset(home: Path, *, name_needed: bool = True, **fields: Any
                     ) -> ClusterPreset:
    """Check a preset before anything is contacted or written: UsageError naming the field.
    A missing or empty ``remote_dir`` is allowed here (it is looked for next); the preset
    returned then holds a placeholder for it and must not be stored. ``name_needed=False``:
    only the other fields matter (looking for a working directory before it is named)."""
    if not name_needed:
        fields = {**fields, "name": "unnamed"}
    elif fields.get("name") == LOCAL.name:
        raise UsageError("'local' is the built-in preset; choose another name")
    if not fields.get("remote_dir"):
        fields = {**fields, "remote_dir": _NOT_CHOSEN}
    try:
        preset = ClusterPreset(**fields)
    except ValidationError as err:
        raise UsageError(_first_error(err)) from None
    if name_needed and preset.name in load_cluster_presets(home):
        raise UsageError(f"preset '{preset.name}' exists; remove it first")
    return preset


def add_preset(home: Path, **fields: Any) -> ClusterPreset:
    """Validate and store a cluster preset; UsageError naming the field when it is wrong."""
    if not fields.get("remote_dir"):
        raise UsageError("remote_dir: a working directory on the centre's collection is "
                         "needed (--remote-dir)")
    preset = check_new_preset(home, **fields)
    presets = load_cluster_presets(home)
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
