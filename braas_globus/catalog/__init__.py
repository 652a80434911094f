"""The cluster catalog: facts about each supported centre, read from ``clusters.toml``.

The CLI and the add-on read clusters from here, and ``braas_globus.endpoint_gen`` makes
``endpoints/<cluster>/`` (template, schema, admin README) from it. Change facts in the TOML
file, then run ``braas-globus endpoints generate``.

``BRAAS_CATALOG=/path/to/clusters.toml`` reads another catalog instead of the shipped one
(to try a new centre's entry, and for the tests).
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from braas_globus.errors import NotFoundError

# Cycles devices each GPU vendor can use; the first is the usual choice.
CYCLES_DEVICES: dict[str, tuple[str, ...]] = {
    "nvidia": ("CUDA", "OPTIX"),
    "amd": ("HIP",),
    "intel": ("ONEAPI",),
}
# What one endpoint block may ask where the catalog says nothing more specific.
DEFAULT_MAX_NODES_PER_BLOCK = 8
DEFAULT_BLOCK_WALLTIME_MINUTES = 1440  # a partition whose limit the centre does not publish
MAX_BLOCKS = 4  # batch jobs one user endpoint may have at once
# Partition names reach batch scripts: the catalog itself only holds safe ones.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Partition(_Frozen):
    """A Slurm partition, a Slurm QOS (MareNostrum 5) or a PBS queue."""

    name: str
    kind: Literal["cpu", "gpu"]
    cores_per_node: PositiveInt
    gpus_per_node: int = Field(0, ge=0)  # as the scheduler counts them
    gpu_devices_per_node: int | None = None  # as programs see them; default gpus_per_node
    gpu_model: str | None = None
    max_walltime_minutes: PositiveInt | None = None
    min_nodes: PositiveInt = 1
    max_nodes: PositiveInt | None = None
    # The most one endpoint block asks for, where lower than the queue's own limit
    # (Polaris prod: blocks of 10-24 nodes run up to 3 h).
    block_max_walltime_minutes: PositiveInt | None = None
    # The device a render uses where no --device is given, when it is not the GPUs': Vista's
    # GH200 partitions render on their Grace CPU cores, as the stock aarch64 image (Debian's
    # Blender, built without GPU kernels) can; `--device CUDA` asks for the GPU, which needs
    # a centre image with a CUDA-enabled aarch64 Blender.
    default_device: Literal["CPU"] | None = None

    @model_validator(mode="after")
    def _check(self) -> Partition:
        if not _SAFE_NAME.fullmatch(self.name):
            raise ValueError(f"partition name {self.name!r} is not a plain name")
        if (self.kind == "gpu") != (self.gpus_per_node > 0):
            raise ValueError(f"{self.name}: a gpu partition needs gpus_per_node > 0, "
                             "a cpu partition none")
        if self.kind == "gpu" and not self.gpu_model:
            raise ValueError(f"{self.name}: a gpu partition needs gpu_model")
        if self.max_nodes is not None and self.max_nodes < self.min_nodes:
            raise ValueError(f"{self.name}: max_nodes < min_nodes")
        if self.default_device is not None and self.kind != "gpu":
            raise ValueError(f"{self.name}: default_device is for a gpu partition (a cpu "
                             "one renders on the CPU anyway)")
        if (self.block_max_walltime_minutes and self.max_walltime_minutes
                and self.block_max_walltime_minutes > self.max_walltime_minutes):
            raise ValueError(f"{self.name}: block_max_walltime_minutes > max_walltime_minutes")
        return self

    @property
    def block_walltime_minutes(self) -> int:
        """The longest walltime one endpoint block on this partition may ask for."""
        return (self.block_max_walltime_minutes or self.max_walltime_minutes
                or DEFAULT_BLOCK_WALLTIME_MINUTES)

    @property
    def devices_per_node(self) -> int:
        """GPU devices one node shows to programs: one render worker each (0 on CPU)."""
        return self.gpu_devices_per_node or self.gpus_per_node


class Container(_Frozen):
    runtime: Literal["apptainer", "singularity"]
    setup: tuple[str, ...] = ()  # shell lines that make the runtime available on a node
    gpu_flags: tuple[str, ...] = ()  # exec flags that expose the GPUs


class Cluster(_Frozen):
    name: str
    title: str
    site: str
    scheduler: Literal["slurm", "pbspro"]
    arch: Literal["x86_64", "aarch64"]
    queue_option: Literal["partition", "qos", "queue"]
    gpu_vendor: Literal["nvidia", "amd", "intel"] | None = None
    cycles_device: Literal["CUDA", "OPTIX", "HIP", "ONEAPI"] | None = None
    gpu_request: Literal["gpus-per-node", "gres", "select-ngpus", "node"] | None = None
    account_pattern: str
    scratch: tuple[str, ...]
    # How {project} is spelled in the scratch paths: as the account is given, or lowercased.
    scratch_project: Literal["as_given", "lower"] = "as_given"
    directives: tuple[str, ...] = ()
    # Endpoint blocks: the most nodes one block asks for (under each partition's max_nodes),
    # and whether the provider asks for the node's cores too (BSC: sbatch -c).
    max_nodes_per_block: PositiveInt = DEFAULT_MAX_NODES_PER_BLOCK
    request_cores: bool = False
    example_account: str  # an account name for the admin README's example; fits the pattern
    docs: str
    notes: str = ""
    container: Container
    partitions: dict[str, Partition]

    @model_validator(mode="before")
    @classmethod
    def _name_partitions(cls, data: dict[str, Any]) -> dict[str, Any]:
        # TOML keys are the names; copy them in so a Partition knows its own.
        parts = data.get("partitions", {})
        return {**data, "partitions": {k: {**v, "name": k} for k, v in parts.items()}}

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        wanted = "queue" if self.scheduler == "pbspro" else ("partition", "qos")
        if self.queue_option not in wanted:
            raise ValueError(f"{self.name}: queue_option {self.queue_option!r} "
                             f"does not fit {self.scheduler}")
        has_gpus = any(p.kind == "gpu" for p in self.partitions.values())
        if has_gpus != (self.gpu_vendor is not None):
            raise ValueError(f"{self.name}: gpu_vendor must be set exactly when "
                             "a partition has GPUs")
        if has_gpus and (self.gpu_request is None or self.cycles_device is None):
            raise ValueError(f"{self.name}: GPU partitions need gpu_request and cycles_device")
        if self.gpu_vendor and self.cycles_device not in CYCLES_DEVICES[self.gpu_vendor]:
            raise ValueError(f"{self.name}: Cycles cannot use {self.cycles_device} "
                             f"on {self.gpu_vendor} GPUs")
        if not (self.account_pattern.startswith("^")
                and self.account_pattern.endswith(r"(?!\n)$")):
            raise ValueError(f"{self.name}: account_pattern must start with ^ and end "
                             r"with (?!\n)$")
        if not re.search(self.account_pattern, self.example_account):
            raise ValueError(f"{self.name}: example_account {self.example_account!r} does not "
                             "match account_pattern")
        for p in self.partitions.values():
            if self.block_nodes(p.name)[0] > self.block_nodes(p.name)[1]:
                raise ValueError(f"{self.name}: {p.name} needs {p.min_nodes} nodes, more than "
                                 f"max_nodes_per_block {self.max_nodes_per_block}")
        if self.request_cores and self.scheduler != "slurm":
            raise ValueError(f"{self.name}: request_cores is for Slurm (PBS always asks)")
        return self

    def block_nodes(self, partition: str) -> tuple[int, int]:
        """(fewest, most) nodes one endpoint block on ``partition`` may ask for."""
        p = self.get(partition)
        return p.min_nodes, min(p.max_nodes or self.max_nodes_per_block,
                                self.max_nodes_per_block)

    def get(self, partition: str) -> Partition:
        try:
            return self.partitions[partition]
        except KeyError:
            known = ", ".join(self.partitions)
            raise NotFoundError(
                f"unknown partition {partition!r} on {self.name}; known: {known}") from None

    def cycles_device_for(self, partition: str) -> str:
        """The Cycles device a render on ``partition`` uses where the job names none: CPU
        unless it has GPUs, or the partition's own ``default_device``."""
        found = self.get(partition)
        if found.kind != "gpu":
            return "CPU"
        if found.default_device is not None:
            return found.default_device
        assert self.cycles_device is not None  # _check: set when a partition has GPUs
        return self.cycles_device

    def cycles_devices_on(self, partition: str) -> tuple[str, ...]:
        """Every Cycles device a render on ``partition`` can use (a GPU node has CPUs too)."""
        if self.get(partition).kind != "gpu":
            return ("CPU",)
        assert self.gpu_vendor is not None  # _check: set when a partition has GPUs
        return (*CYCLES_DEVICES[self.gpu_vendor], "CPU")

    def container_flags_for(self, partition: str) -> tuple[str, ...]:
        return self.container.gpu_flags if self.get(partition).kind == "gpu" else ()

    def scratch_dirs(self, project: str, user: str | None) -> tuple[list[str], list[str]]:
        """The scratch roots with {project} and {user} filled in, as collection paths; and
        the roots that cannot be (a $VARIABLE of the centre's shell, or {user} unknown)."""
        project = project.lower() if self.scratch_project == "lower" else project
        filled, left = [], []
        for root in self.scratch:
            if "$" in root or ("{user}" in root and not user):
                left.append(root)
                continue
            filled.append(root.replace("{project}", project).replace("{user}", user or ""))
        return filled, left


class Catalog(_Frozen):
    clusters: dict[str, Cluster]

    @model_validator(mode="before")
    @classmethod
    def _name_clusters(cls, data: dict[str, Any]) -> dict[str, Any]:
        clusters = data.get("clusters", {})
        return {**data, "clusters": {k: {**v, "name": k} for k, v in clusters.items()}}

    def get(self, name: str) -> Cluster:
        try:
            return self.clusters[name]
        except KeyError:
            known = ", ".join(self.clusters)
            raise NotFoundError(f"unknown cluster {name!r}; known: {known}") from None


def parse_catalog(text: str) -> Catalog:
    """A Catalog from TOML text; pydantic's ValidationError on bad data."""
    return Catalog.model_validate(tomllib.loads(text))


def load_catalog() -> Catalog:
    """The catalog shipped with the package, or the file $BRAAS_CATALOG names (read once)."""
    return _load_catalog(os.environ.get("BRAAS_CATALOG") or None)


@cache
def _load_catalog(path: str | None) -> Catalog:
    if path is None:
        text = (files(__package__) / "clusters.toml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return parse_catalog(text)
