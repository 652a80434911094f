"""Make every centre's endpoint folder from the cluster catalog.

``endpoints/<cluster>/`` holds what a centre's multi-user Globus Compute endpoint reads:
``user_config_template.yaml.j2``, ``user_config_schema.json`` and the admin's ``README.md``.
All three are made here from ``braas_globus/catalog/clusters.toml`` and the sources in
``braas_globus/endpoint_templates/`` (one template per scheduler and one README), and stay
committed, because centres read them. ``braas-globus endpoints generate`` writes them;
``--check`` lists the files that differ. Stdlib only: the sources use ``@@name@@`` for what
is filled in here, so the Jinja that the endpoint renders per user passes through untouched.

The schema is the only guard against shell injection (Parsl writes the values into a batch
script that runs through a shell), so it is built from the catalog's safe names and
anchored patterns only: every field an enum, an anchored ASCII pattern or a bounded integer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

from braas_globus.catalog import MAX_BLOCKS, Catalog, Cluster, Partition, load_catalog
from braas_globus.spec import EMAIL_PATTERN

TEMPLATE_NAME = "user_config_template.yaml.j2"
SCHEMA_NAME = "user_config_schema.json"
README_NAME = "README.md"
FILE_NAMES = (TEMPLATE_NAME, SCHEMA_NAME, README_NAME)

SCHEMA_COMMENT = (
    "What a user may send to this endpoint. Every value ends up in a batch script that runs "
    "through a shell, so every field is an enum, an anchored ASCII pattern or a bounded "
    "integer. Patterns end in (?!\\n)$ because Python's $ also matches before a trailing "
    "newline. The allOf rules hold the centre's per-partition limits.")
QUEUE_DESCRIPTION = {"partition": "Slurm partition", "qos": "Slurm QOS (sbatch -q)",
                     "queue": "PBS queue"}
QUEUE_NAME = {"partition": "a Slurm partition", "qos": "a Slurm QOS (`sbatch -q`)",
              "queue": "a PBS queue"}
SCHEDULER_TITLE = {"slurm": "Slurm", "pbspro": "PBS Pro"}
PROVIDER = {"slurm": "SlurmProvider with SrunLauncher",
            "pbspro": "PBSProProvider with MpiExecLauncher (`mpiexec --ppn 1`)"}
EMAIL_DIRECTIVES = {
    "slurm": "`#SBATCH --mail-user=<email>` and `#SBATCH --mail-type=END,FAIL`",
    "pbspro": ("`#PBS -M <email>` and `#PBS -m ae` (Parsl writes `#PBS -m n` first; qsub "
               "keeps the last `-m`: check once with a test job)"),
}
GPU_REQUEST_TEXT = {
    "gpus-per-node": "`#SBATCH --gpus-per-node=N`",
    "gres": "`#SBATCH --gres=gpu:N`",
    "select-ngpus": "`-l select=...:ngpus=N`",
    "node": "none: the GPUs come with the node",
    None: "none (no GPU partitions)",
}
_PLACEHOLDER = re.compile(r"@@([a-z_]+)@@")
# Catalog text that lands in a generated template: one line, and no Jinja delimiter (the
# catalog's own model already holds partition names to a plain name). Flags also go inside
# a double-quoted shell string: nothing there that a shell or YAML would read.
_LINE = re.compile(r"[^\x00-\x1f\x7f{}]*")
_FLAG = re.compile(r"[A-Za-z0-9_./:=,+-]+")


def _source(name: str) -> str:
    return (files("braas_globus") / "endpoint_templates" / name).read_text(encoding="utf-8")


def _fill(source: str, values: dict[str, str], what: str) -> str:
    """Replace every @@name@@ in source; a name without a value (or a value unused) fails."""
    used: set[str] = set()

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{what}: no value for @@{name}@@")
        used.add(name)
        return values[name]

    text = _PLACEHOLDER.sub(value, source)
    if unused := set(values) - used:
        raise KeyError(f"{what}: values never used: {sorted(unused)}")
    return text


def _check_text(cluster: Cluster) -> None:
    for line in (*cluster.container.setup, *cluster.directives):
        if not _LINE.fullmatch(line):
            raise ValueError(f"{cluster.name}: {line!r} cannot go into a template line "
                             "(a brace or a control character)")
    for flag in cluster.container.gpu_flags:
        if not _FLAG.fullmatch(flag):
            raise ValueError(f"{cluster.name}: container flag {flag!r} is not a plain word")


def short_name(cluster: Cluster) -> str:
    """The title without its centre: "Karolina (IT4I)" -> "Karolina"."""
    return re.sub(r"\s*\([^)]*\)$", "", cluster.title)


def gpu_threads(p: Partition) -> int:
    """Blender's CPU threads for one worker on a GPU node: one worker per device."""
    return p.cores_per_node // p.devices_per_node


# ---- the template ----------------------------------------------------------------------------


def _gpu_partitions(cluster: Cluster) -> str:
    rows = [f'    "{p.name}": {{"gpus": {p.gpus_per_node}, "devices": {p.devices_per_node}, '
            f'"threads": {gpu_threads(p)}, "device": "{cluster.cycles_device_for(p.name)}"}},'
            for p in cluster.partitions.values() if p.kind == "gpu"]
    if not rows:
        return "{%- set gpu_partitions = {} %}  {#- none here #}"
    return "{%- set gpu_partitions = {\n" + "\n".join(rows) + "\n} %}"


def _cores(cluster: Cluster) -> str:
    """A whole node's cores: one number, or a lookup by partition where they differ."""
    cores = {p.name: p.cores_per_node for p in cluster.partitions.values()}
    if len(set(cores.values())) == 1:
        return str(next(iter(cores.values())))
    table = ", ".join(f'"{name}": {n}' for name, n in cores.items())
    return f"{{{{ {{{table}}}[part] }}}}"


def _provider_resources(cluster: Cluster) -> list[str]:
    lines = []
    if cluster.scheduler == "pbspro":
        lines.append(f"    cpus_per_node: {_cores(cluster)}")
    elif cluster.request_cores:
        lines += ["    # The centre asks for the cores too (sbatch -c): a whole node's.",
                  f"    cores_per_node: {_cores(cluster)}"]
    request = {"gpus-per-node": "gpus_per_node: {{ gpu.gpus }}",
               "gres": 'gres: "gpu:{{ gpu.gpus }}"',
               "select-ngpus": 'select_options: "ngpus={{ gpu.gpus }}"'}.get(
                   cluster.gpu_request or "")
    if request:
        lines += ["    {%- if gpu %}", f"    {request}", "    {%- endif %}"]
    elif cluster.gpu_request == "node":
        lines.append("    # GPUs come with the node: no GPU request.")
    return lines


def _jinja_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def make_template(cluster: Cluster) -> str:
    _check_text(cluster)
    setup = "\n".join(f"      {line}" for line in cluster.container.setup)
    values = {
        "title": cluster.title,
        "example_partition": next(iter(cluster.partitions)),
        "gpu_partitions": _gpu_partitions(cluster),
        "directives": _jinja_list(cluster.directives),
        "provider_resources": "\n".join(_provider_resources(cluster)),
        "worker_setup": setup,
        "cluster": cluster.name,
        "runtime": cluster.container.runtime,
        "gpu_flags": " ".join(cluster.container.gpu_flags),
        "queue_key": cluster.queue_option,  # the provider's field: partition, qos or queue
    }
    source = f"{cluster.scheduler}.yaml.j2.in"
    return _fill(_source(source), values, source)


# ---- the schema ------------------------------------------------------------------------------


def make_schema_value(cluster: Cluster) -> dict[str, Any]:
    """The schema as a JSON value: strict, with one allOf rule per partition's limits."""
    parts = list(cluster.partitions.values())
    nodes = {p.name: cluster.block_nodes(p.name) for p in parts}
    rules = []
    for p in parts:
        low, high = nodes[p.name]
        then: dict[str, Any] = {"properties": {
            "walltime_minutes": {"maximum": p.block_walltime_minutes},
            "nodes_per_block": {"minimum": low, "maximum": high}}}
        if low > 1:
            then["required"] = ["nodes_per_block"]
        rules.append({"if": {"properties": {"partition": {"const": p.name}},
                             "required": ["partition"]},
                      "then": then})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": SCHEMA_COMMENT,
        "title": f"braas-globus on {cluster.title}",
        "type": "object",
        "additionalProperties": False,
        "required": ["account", "partition", "walltime_minutes"],
        "properties": {
            "account": {"description": "Project to charge", "type": "string",
                        "minLength": 1, "maxLength": 64, "pattern": cluster.account_pattern},
            "partition": {"description": QUEUE_DESCRIPTION[cluster.queue_option],
                          "type": "string", "enum": [p.name for p in parts]},
            "walltime_minutes": {"description": "Walltime of one block, in minutes",
                                 "type": "integer", "minimum": 1,
                                 "maximum": max(p.block_walltime_minutes for p in parts)},
            "nodes_per_block": {"description": "Nodes in one batch job (default 1)",
                                "type": "integer", "minimum": 1,
                                "maximum": max(high for _low, high in nodes.values())},
            "max_blocks": {"description": "Batch jobs at once (default 1)", "type": "integer",
                           "minimum": 1, "maximum": MAX_BLOCKS},
            "email": {"description": "Mail when a batch job ends or fails", "type": "string",
                      "minLength": 3, "maxLength": 254, "pattern": EMAIL_PATTERN},
        },
        "allOf": rules,
    }


def make_schema(cluster: Cluster) -> str:
    """The schema file: indented JSON, one line per allOf rule (a partition each)."""
    value = make_schema_value(cluster)
    rules = value.pop("allOf")
    head = json.dumps(value, indent=2)
    assert head.endswith("\n}")
    lines = ",\n".join(f"    {json.dumps(rule)}" for rule in rules)
    return f'{head[:-2]},\n  "allOf": [\n{lines}\n  ]\n}}\n'


# ---- the README ------------------------------------------------------------------------------


def _duration(minutes: int | None) -> str:
    if minutes is None:
        return "not known"
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def _partition_row(cluster: Cluster, p: Partition) -> str:
    if p.kind == "gpu":
        gpus = f"{p.gpus_per_node} x {p.gpu_model}"
        if p.devices_per_node != p.gpus_per_node:
            gpus += f" ({p.devices_per_node} devices)"
    else:
        gpus = "-"
    low, high = cluster.block_nodes(p.name)
    return (f"| `{p.name}` | {p.kind} | {p.cores_per_node} | {gpus} | "
            f"{cluster.cycles_device_for(p.name)} | {_duration(p.max_walltime_minutes)} | "
            f"{_duration(p.block_walltime_minutes)} | {low}-{high} |")


def _exports_rest(cluster: Cluster) -> str:
    if cluster.gpu_vendor is None:
        return ("`BRAAS_CONTAINER_FLAGS` (empty: no GPU partitions) and `BRAAS_CYCLES_DEVICE` "
                "(CPU),\nwhich the braas-globus render worker reads to start Blender in "
                "the image.")
    flags = " ".join(cluster.container.gpu_flags) or "(none)"
    on_gpus = sorted({cluster.cycles_device_for(p.name) for p in cluster.partitions.values()
                      if p.kind == "gpu"})
    device = f"{cluster.cycles_device} on GPU partitions" if on_gpus == [cluster.cycles_device] \
        else "as the table's Cycles device column says"
    return (f"`BRAAS_CONTAINER_FLAGS` (`{flags}` on GPU partitions) and `BRAAS_CYCLES_DEVICE` "
            f"(CPU, or\n{device}), which the braas-globus "
            "render worker reads to\nstart Blender in the image; on GPU partitions also "
            "`BRAAS_CPU_THREADS`, one worker's\nshare of the node's cores (a worker runs per "
            "GPU device), so CPU work in the Blenders\nof one node does not oversubscribe it.")


def make_readme(cluster: Cluster) -> str:
    setup = cluster.container.setup
    values = {
        "title": cluster.title,
        "site": cluster.site,
        "short": short_name(cluster),
        "cluster": cluster.name,
        "provider": PROVIDER[cluster.scheduler],
        "account_pattern": cluster.account_pattern,
        "queue_name": QUEUE_NAME[cluster.queue_option],
        "email_directives": EMAIL_DIRECTIVES[cluster.scheduler],
        "partition_rows": "\n".join(_partition_row(cluster, p)
                                    for p in cluster.partitions.values()),
        "gpu_request": GPU_REQUEST_TEXT[cluster.gpu_request if cluster.gpu_vendor else None],
        "exclusive": " (`--exclusive`)" if cluster.scheduler == "slurm" else "",
        "directives": ", ".join(f"`{d}`" for d in cluster.directives) or "none",
        "submit": {"slurm": "sbatch", "pbspro": "qsub"}[cluster.scheduler],
        "arch_note": ("" if cluster.arch == "x86_64" else
                      f"\n   {short_name(cluster)}'s nodes are {cluster.arch}: build the image "
                      f"on an {cluster.arch} machine, with an {cluster.arch} Blender."),
        "example_account": cluster.example_account,
        "example_partition": next(iter(cluster.partitions)),
        "setup_block": ("\n".join(f"    {line}" for line in setup) if setup
                        else "    (nothing: the runtime is on every node)"),
        "runtime": cluster.container.runtime,
        "exports_rest": _exports_rest(cluster),
        "scheduler_title": SCHEDULER_TITLE[cluster.scheduler],
        "arch": cluster.arch,
        "scratch": ", ".join(f"`{root}`" for root in cluster.scratch),
        "notes": f"- {cluster.notes}\n" if cluster.notes else "",
        "docs": cluster.docs,
    }
    return _fill(_source("README.md.in"), values, "README.md.in")


# ---- the overview README's cluster table ----------------------------------------------------

OVERVIEW_BEGIN = "<!-- generated: clusters (braas-globus endpoints generate) -->"
OVERVIEW_END = "<!-- end generated: clusters -->"


def _gpu_summary(cluster: Cluster) -> str:
    models = list(dict.fromkeys(p.gpu_model for p in cluster.partitions.values()
                                if p.kind == "gpu" and p.gpu_model is not None))  # _check
    if not models:
        return "none"
    return f"{'; '.join(models)} ({cluster.cycles_device})"


def overview_table(catalog: Catalog) -> str:
    rows = ["| cluster | centre | scheduler | GPUs | admin guide |", "|---|---|---|---|---|"]
    for c in catalog.clusters.values():
        scheduler = SCHEDULER_TITLE[c.scheduler] + (" (QOS)" if c.queue_option == "qos" else "")
        arch = "" if c.arch == "x86_64" else f", {c.arch} CPUs"
        rows.append(f"| {short_name(c)} | {c.site} | {scheduler} | {_gpu_summary(c)}{arch} | "
                    f"[{c.name}]({c.name}/README.md) |")
    return "\n".join(rows)


def make_overview(catalog: Catalog, current: str) -> str:
    """The overview README with its marked cluster table replaced (the prose is kept)."""
    begin, end = current.find(OVERVIEW_BEGIN), current.find(OVERVIEW_END)
    if begin < 0 or end < begin:
        raise ValueError(f"endpoints/README.md lacks the markers {OVERVIEW_BEGIN!r} ... "
                         f"{OVERVIEW_END!r} around its cluster table")
    return (current[:begin] + OVERVIEW_BEGIN + "\n" + overview_table(catalog) + "\n"
            + current[end:])


# ---- all of them -----------------------------------------------------------------------------


def generate(catalog: Catalog | None = None, overview: str | None = None) -> dict[str, str]:
    """Every generated file: relative path under endpoints/ -> its text.

    ``overview`` is the current endpoints/README.md; without it that file is left out.
    """
    catalog = catalog or load_catalog()
    out: dict[str, str] = {}
    for cluster in catalog.clusters.values():
        out[f"{cluster.name}/{TEMPLATE_NAME}"] = make_template(cluster)
        out[f"{cluster.name}/{SCHEMA_NAME}"] = make_schema(cluster)
        out[f"{cluster.name}/{README_NAME}"] = make_readme(cluster)
    if overview is not None:
        out[README_NAME] = make_overview(catalog, overview)
    return out


def write(target: Path, catalog: Catalog | None = None, *, check: bool = False) -> list[str]:
    """Generate into ``target`` (an endpoints/ folder); return the paths that differed.

    With ``check`` nothing is written. A cluster folder in ``target`` that the catalog does
    not know counts as differing (and is left alone: delete it by hand).
    """
    overview_path = target / README_NAME
    overview = overview_path.read_text(encoding="utf-8") if overview_path.is_file() else None
    catalog = catalog or load_catalog()
    files_ = generate(catalog, overview)
    differ = []
    for relative, text in files_.items():
        path = target / relative
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        differ.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if target.is_dir():
        extra = sorted(p.name + "/" for p in target.iterdir()
                       if p.is_dir() and p.name not in catalog.clusters
                       and not p.name.startswith((".", "_")))
        differ += [f"{name} (not in the catalog)" for name in extra]
    return differ
