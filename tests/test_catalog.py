"""The cluster catalog: the facts it holds and the data it refuses."""

import re
import tomllib

import pytest
from pydantic import ValidationError

from braas_globus.catalog import CYCLES_DEVICES, load_catalog, parse_catalog
from braas_globus.errors import NotFoundError

CATALOG = load_catalog()
ALL_PARTITIONS = [(c.name, p) for c in CATALOG.clusters.values() for p in c.partitions]


def test_catalog_holds_the_ten_clusters_of_the_original():
    assert list(CATALOG.clusters) == [
        "barbora", "karolina", "lumi", "leonardo", "marenostrum5-gpp", "marenostrum5-acc",
        "vista", "frontera", "polaris", "aurora",
    ]
    assert all(name == cluster.name for name, cluster in CATALOG.clusters.items())


def test_load_catalog_reads_once():
    assert load_catalog() is load_catalog()


def test_unknown_cluster_names_the_known_ones():
    with pytest.raises(NotFoundError, match=r"unknown cluster 'nope'; known: barbora, karolina"):
        CATALOG.get("nope")


def test_unknown_partition_names_the_known_ones():
    with pytest.raises(NotFoundError, match=r"unknown partition 'qgpu' on lumi; known: standard"):
        CATALOG.get("lumi").get("qgpu")


@pytest.mark.parametrize(("cluster", "scheduler", "queue_option", "arch"), [
    ("barbora", "slurm", "partition", "x86_64"),
    ("karolina", "slurm", "partition", "x86_64"),
    ("lumi", "slurm", "partition", "x86_64"),
    ("leonardo", "slurm", "partition", "x86_64"),
    ("marenostrum5-gpp", "slurm", "qos", "x86_64"),
    ("marenostrum5-acc", "slurm", "qos", "x86_64"),
    ("vista", "slurm", "partition", "aarch64"),
    ("frontera", "slurm", "partition", "x86_64"),
    ("polaris", "pbspro", "queue", "x86_64"),
    ("aurora", "pbspro", "queue", "x86_64"),
])
def test_scheduler_and_arch(cluster, scheduler, queue_option, arch):
    c = CATALOG.get(cluster)
    assert (c.scheduler, c.queue_option, c.arch) == (scheduler, queue_option, arch)


@pytest.mark.parametrize(("cluster", "vendor", "device", "flags"), [
    ("barbora", "nvidia", "CUDA", ("--nv",)),
    ("karolina", "nvidia", "CUDA", ("--nv",)),
    ("lumi", "amd", "HIP", ("--rocm",)),
    ("leonardo", "nvidia", "CUDA", ("--nv",)),
    ("marenostrum5-gpp", None, None, ()),
    ("marenostrum5-acc", "nvidia", "CUDA", ("--nv",)),
    ("vista", "nvidia", "CUDA", ("--nv",)),
    ("frontera", "nvidia", "OPTIX", ("--nv",)),
    ("polaris", "nvidia", "CUDA", ("--nv",)),
    ("aurora", "intel", "ONEAPI", ("--bind", "/dev/dri")),
])
def test_gpu_vendor_cycles_device_and_container_flags(cluster, vendor, device, flags):
    c = CATALOG.get(cluster)
    assert (c.gpu_vendor, c.cycles_device, c.container.gpu_flags) == (vendor, device, flags)


@pytest.mark.parametrize(("cluster", "partition"), ALL_PARTITIONS)
def test_partition_facts_hang_together(cluster, partition):
    c = CATALOG.get(cluster)
    p = c.get(partition)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", p.name)
    assert p.cores_per_node >= 16
    if p.kind == "gpu":
        assert p.gpus_per_node >= 1 and p.devices_per_node >= p.gpus_per_node
        assert c.cycles_device_for(partition) == p.default_device if p.default_device \
            else c.cycles_device_for(partition) in CYCLES_DEVICES[c.gpu_vendor]
        assert c.container_flags_for(partition) == c.container.gpu_flags
    else:
        assert (p.gpus_per_node, p.devices_per_node, p.gpu_model) == (0, 0, None)
        assert c.cycles_device_for(partition) == "CPU"
        assert c.container_flags_for(partition) == ()


@pytest.mark.parametrize(("cluster", "partition", "kind", "gpus", "devices", "max_minutes"), [
    ("karolina", "qgpu", "gpu", 8, 8, 2880),
    ("karolina", "qcpu_exp", "cpu", 0, 0, 60),
    ("barbora", "qdgx", "gpu", 16, 16, 2880),
    ("lumi", "standard-g", "gpu", 8, 8, 2880),
    ("lumi", "standard", "cpu", 0, 0, 2880),
    ("leonardo", "boost_usr_prod", "gpu", 4, 4, 1440),
    ("marenostrum5-acc", "acc_debug", "gpu", 4, 4, 120),
    ("vista", "gh", "gpu", 1, 1, 2880),
    ("frontera", "development", "cpu", 0, 0, 120),
    ("polaris", "debug", "gpu", 4, 4, 60),
    ("aurora", "debug", "gpu", 6, 12, 60),
])
def test_known_partition_facts(cluster, partition, kind, gpus, devices, max_minutes):
    p = CATALOG.get(cluster).get(partition)
    assert (p.kind, p.gpus_per_node, p.devices_per_node, p.max_walltime_minutes) == (
        kind, gpus, devices, max_minutes)


def test_vista_renders_on_its_grace_cores_where_the_job_names_no_device():
    # The stock aarch64 image holds Debian's Blender, built without GPU kernels: every Vista
    # partition renders on the CPU by default; the GH200's CUDA stays for a centre image
    # that has it (--device CUDA).
    vista = CATALOG.get("vista")
    assert vista.arch == "aarch64"
    assert {p: vista.cycles_device_for(p) for p in vista.partitions} == \
        {"gg": "CPU", "gh": "CPU", "gh-dev": "CPU"}
    assert vista.cycles_devices_on("gh") == ("CUDA", "OPTIX", "CPU")
    assert [name for name, c in CATALOG.clusters.items()
            if any(p.default_device for p in c.partitions.values())] == ["vista"]


def test_only_the_gpp_half_of_marenostrum_has_no_gpus():
    no_gpus = [c.name for c in CATALOG.clusters.values()
               if all(p.kind == "cpu" for p in c.partitions.values())]
    assert no_gpus == ["marenostrum5-gpp"]


@pytest.mark.parametrize(("cluster", "directives", "setup", "scratch"), [
    ("polaris", ("#PBS -l filesystems=home:eagle",),
     ("module use /soft/modulefiles", "module load spack-pe-base apptainer"),
     "/eagle/{project}/{user}"),
    ("aurora", ("#PBS -l filesystems=flare",), ("module load apptainer",),
     "/lus/flare/projects/{project}/{user}"),
    ("lumi", (), (), "/scratch/{project}"),
    ("leonardo", (), (), "/leonardo_scratch/fast/{project}"),
    ("marenostrum5-gpp", (), ("module load singularity",), "/gpfs/scratch/{project}/{user}"),
    ("vista", (), ("module load tacc-apptainer",), "$SCRATCH"),
])
def test_scheduler_extras_container_setup_and_scratch(cluster, directives, setup, scratch):
    c = CATALOG.get(cluster)
    assert c.directives == directives
    assert c.container.setup == setup
    assert scratch in c.scratch


@pytest.mark.parametrize(("cluster", "good", "bad"), [
    ("karolina", ["OPEN-12-34", "DD-23-157", "open-1-2"], ["OPEN-12-34\n", "OPEN 12", "OPEN-12"]),
    ("lumi", ["project_465000123"], ["project_46500012", "project_465000123\n", "465000123"]),
    ("polaris", ["datascience", "Catalyst_2", "my-proj"], ["-x", "a b", "a;b", "", "x" * 65]),
])
def test_account_patterns(cluster, good, bad):
    pattern = CATALOG.get(cluster).account_pattern
    # re.search is how jsonschema applies "pattern".
    assert all(re.search(pattern, value) for value in good)
    assert not any(re.search(pattern, value) for value in bad)


def test_a_plain_dollar_would_let_a_trailing_newline_through():
    # Why every pattern ends in (?!\n)$: Python's $ also matches before a final newline.
    assert re.search(r"^[a-z]+$", "abc\n")
    assert not re.search(r"^[a-z]+(?!\n)$", "abc\n")


def test_models_are_frozen():
    with pytest.raises(ValidationError):
        CATALOG.get("lumi").arch = "aarch64"


MINIMAL = """
[clusters.x]
title = "X"
site = "X"
scheduler = "slurm"
arch = "x86_64"
queue_option = "partition"
gpu_vendor = "nvidia"
cycles_device = "CUDA"
gpu_request = "gres"
account_pattern = '^[a-z]+(?!\\n)$'
example_account = "abc"
scratch = ["/scratch"]
docs = "https://example.org"
[clusters.x.container]
runtime = "apptainer"
[clusters.x.partitions]
cpu = { kind = "cpu", cores_per_node = 32 }
gpu = { kind = "gpu", cores_per_node = 32, gpus_per_node = 4, gpu_model = "A100" }
"""


def test_minimal_catalog_parses():
    catalog = parse_catalog(MINIMAL)
    assert catalog.get("x").get("gpu").devices_per_node == 4


@pytest.mark.parametrize(("old", "new", "error"), [
    ('cycles_device = "CUDA"', 'cycles_device = "HIP"', "Cycles cannot use HIP on nvidia"),
    ('scheduler = "slurm"', 'scheduler = "pbspro"', "does not fit pbspro"),
    ('gpus_per_node = 4, ', "", "gpus_per_node > 0"),
    (', gpu_model = "A100"', "", "needs gpu_model"),
    ("cores_per_node = 32 }", "cores_per_node = 32, speed = 3 }", "Extra inputs"),
    ('gpu_vendor = "nvidia"', 'gpu_vendor = "ibm"', "gpu_vendor"),
    ("(?!\\n)$'", "$'", "must start with ^ and end"),
    ("cpu = {", '"cpu;ls" = {', "not a plain name"),
    ('arch = "x86_64"', 'arch = "ppc64le"', "arch"),
    ('example_account = "abc"', 'example_account = "ABC-1"', "does not match account_pattern"),
    ('example_account = "abc"\n', "", "example_account"),
    ("cores_per_node = 32 }", "cores_per_node = 32, min_nodes = 9 }",
     "needs 9 nodes, more than max_nodes_per_block 8"),
    ("cores_per_node = 32 }", "cores_per_node = 32, max_walltime_minutes = 60, "
     "block_max_walltime_minutes = 61 }", "block_max_walltime_minutes > max_walltime_minutes"),
    ('queue_option = "partition"', 'queue_option = "partition"\nmax_nodes_per_block = 0',
     "max_nodes_per_block"),
    ("cores_per_node = 32 }", 'cores_per_node = 32, default_device = "CPU" }',
     "default_device is for a gpu partition"),
])
def test_bad_catalog_data_is_refused(old, new, error):
    assert old in MINIMAL
    with pytest.raises(ValidationError, match=re.escape(error)):
        parse_catalog(MINIMAL.replace(old, new, 1))


def test_catalog_file_is_valid_toml_with_no_unknown_keys():
    # parse_catalog forbids unknown keys, so this also guards against typos in the TOML.
    from importlib.resources import files

    text = (files("braas_globus.catalog") / "clusters.toml").read_text()
    assert set(tomllib.loads(text)) == {"clusters"}
    assert parse_catalog(text) == CATALOG


def test_endpoint_block_limits():
    catalog = parse_catalog(MINIMAL.replace(
        "cpu = { kind = \"cpu\", cores_per_node = 32 }",
        "cpu = { kind = \"cpu\", cores_per_node = 32, max_nodes = 3 }"))
    x = catalog.get("x")
    assert x.block_nodes("cpu") == (1, 3)  # the partition's max_nodes, under the cap
    assert x.block_nodes("gpu") == (1, 8)  # the default cap
    assert x.get("gpu").block_walltime_minutes == 1440  # no known limit: a day
    assert (x.max_nodes_per_block, x.request_cores) == (8, False)


@pytest.mark.parametrize(("cluster", "partition", "nodes", "minutes"), [
    ("karolina", "qcpu_long", (1, 8), 8640),
    ("karolina", "qfat", (1, 1), 2880),
    ("frontera", "normal", (3, 8), 2880),
    ("polaris", "prod", (10, 24), 180),  # the routing queue: 10-24 nodes up to 3 h
    ("polaris", "demand", (1, 24), 60),
    ("marenostrum5-gpp", "gp_bsccase", (1, 8), 1440),  # no published limit
    ("lumi", "debug", (1, 4), 30),
])
def test_known_block_limits(cluster, partition, nodes, minutes):
    c = CATALOG.get(cluster)
    assert c.block_nodes(partition) == nodes
    assert c.get(partition).block_walltime_minutes == minutes


def test_only_bsc_asks_for_the_cores():
    assert [c.name for c in CATALOG.clusters.values() if c.request_cores] == [
        "marenostrum5-gpp", "marenostrum5-acc"]


def test_request_cores_is_for_slurm_only():
    text = MINIMAL.replace('scheduler = "slurm"', 'scheduler = "pbspro"').replace(
        'queue_option = "partition"', 'queue_option = "queue"\nrequest_cores = true')
    with pytest.raises(ValidationError, match="request_cores is for Slurm"):
        parse_catalog(text)


@pytest.mark.parametrize("cluster", list(CATALOG.clusters))
def test_example_accounts_fit_their_patterns(cluster):
    c = CATALOG.get(cluster)
    assert re.search(c.account_pattern, c.example_account)


def test_braas_catalog_names_another_catalog(tmp_path, monkeypatch):
    other = tmp_path / "clusters.toml"
    other.write_text(MINIMAL)
    monkeypatch.setenv("BRAAS_CATALOG", str(other))
    assert list(load_catalog().clusters) == ["x"]
    assert load_catalog() is load_catalog()
    monkeypatch.delenv("BRAAS_CATALOG")
    assert load_catalog() is CATALOG
