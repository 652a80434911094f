"""Centre endpoint templates and schemas, rendered and loaded by globus-compute-endpoint itself.

The files in endpoints/ are generated from the catalog (braas_globus.endpoint_gen); the first
tests regenerate them and fail on any drift. Each template is rendered with the endpoint's
own renderer, loaded with its own config loader, and the Parsl provider it builds writes a
real batch script; the scheduler commands are recorded instead of run. Every string field
of every schema is attacked with a corpus of shell, directive, YAML and Jinja injections,
also for a made-up eleventh cluster generated from a copy of the catalog, which then runs a
render task through the real engine on the local Slurm.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

pytest.importorskip("globus_compute_endpoint", reason="needs the globus extra")

from globus_compute_endpoint.endpoint.config import CoreEndpointConfig  # noqa: E402
from globus_compute_endpoint.endpoint.config.utils import (  # noqa: E402
    load_user_config_template,
    render_config_user_template,
)
from globus_compute_endpoint.endpoint.identity_mapper import MappedPosixIdentity  # noqa: E402
from parsl.providers.cluster_provider import ClusterProvider  # noqa: E402

from braas_globus import endpoint_gen  # noqa: E402
from braas_globus.catalog import load_catalog  # noqa: E402
from braas_globus.endpoint_config import (  # noqa: E402
    ENDPOINTS_DIR,
    SCHEMA_NAME,
    TEMPLATE_NAME,
    load_rendered_config,
    load_schema,
    render_user_config,
    template_dir,
    validate_user_config,
)
from braas_globus.errors import NotFoundError, UsageError  # noqa: E402
from braas_globus.worker.render_task import block_end, block_margin  # noqa: E402

CATALOG = load_catalog()
CLUSTERS = list(CATALOG.clusters)
ACCOUNTS = {
    "barbora": "OPEN-12-34", "karolina": "DD-23-157", "lumi": "project_465000123",
    "leonardo": "EUHPC_D12_345", "marenostrum5-gpp": "ehpc123", "marenostrum5-acc": "bsc21",
    "vista": "TG-ABC123456", "frontera": "ASC23013", "polaris": "datascience",
    "aurora": "Aurora_deployment",
}
EMAIL = "render.user+braas@example.org"
QUEUE_OPTION = {"partition": "partition", "qos": "qos", "queue": "queue"}


def limits(cluster: str, partition: str) -> dict:
    """The schema's limits for one partition: its allOf rule over the top-level bounds."""
    schema = load_schema(cluster)
    props = schema["properties"]
    rules = [r["then"] for r in schema["allOf"]
             if r["if"]["properties"]["partition"]["const"] == partition]
    assert len(rules) == 1, f"{cluster}: one allOf rule per partition"
    then = rules[0]["properties"]
    return {
        "walltime": then["walltime_minutes"]["maximum"],
        "nodes_min": then["nodes_per_block"]["minimum"],
        "nodes_max": then["nodes_per_block"]["maximum"],
        "blocks_max": props["max_blocks"]["maximum"],
        "needs_nodes": "nodes_per_block" in rules[0].get("required", []),
    }


def options(cluster: str, partition: str, variant: str = "min") -> dict:
    """A valid user config: the smallest request without email, or the largest with it."""
    lim = limits(cluster, partition)
    opts = {"account": ACCOUNTS[cluster], "partition": partition, "walltime_minutes": 1}
    if lim["needs_nodes"]:
        opts["nodes_per_block"] = lim["nodes_min"]
    if variant == "max":
        opts.update(walltime_minutes=lim["walltime"], nodes_per_block=lim["nodes_max"],
                    max_blocks=lim["blocks_max"], email=EMAIL)
    return opts


def hhmmss(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


@pytest.fixture(autouse=True)
def scheduler_commands(monkeypatch, request):
    """Record every command a Parsl provider would run, and run none (except in a test
    that asks for the real local Slurm)."""
    commands: list[str] = []
    if "slurm_cluster" in request.fixturenames:
        return commands

    def execute_wait(self, cmd, timeout=None):
        commands.append(cmd)
        if cmd.startswith("sbatch "):
            return 0, "Submitted batch job 4242", ""
        if cmd.startswith("qsub "):
            return 0, "4242.pbs01\n", ""
        return 1, "", "recorded, not run"  # the sacct probe: Parsl falls back to squeue

    monkeypatch.setattr(ClusterProvider, "execute_wait", execute_wait)
    return commands


def endpoint_render(cluster: str, opts: dict, schema: dict | None) -> str:
    """Render exactly as the centre's multi-user endpoint does, with or without a schema."""
    path = ENDPOINTS_DIR / cluster / TEMPLATE_NAME
    return render_config_user_template(
        parent_config=CoreEndpointConfig(),
        user_config_template=load_user_config_template(path),
        user_config_template_path=path,
        mapped_identity=MappedPosixIdentity(pwd.getpwuid(os.getuid()), [], None),
        user_config_schema=schema,
        user_opts=opts,
    )


# ---- the committed files are what the catalog generates ----

GENERATE = "braas-globus endpoints generate"


def test_generating_from_the_catalog_gives_the_committed_files(tmp_path):
    target = tmp_path / "endpoints"
    target.mkdir()
    # The overview's prose is hand-written around its generated cluster table.
    shutil.copy(ENDPOINTS_DIR / "README.md", target / "README.md")
    endpoint_gen.write(target, CATALOG)
    generated = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ENDPOINTS_DIR) for p in ENDPOINTS_DIR.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts)
    assert committed == generated, f"endpoints/ has other files than `{GENERATE}` makes"
    for relative in generated:
        new, old = (target / relative).read_bytes(), (ENDPOINTS_DIR / relative).read_bytes()
        assert new == old, (f"endpoints/{relative} differs from what the catalog generates: "
                            f"run `{GENERATE}` and commit the result (never edit it by hand)")


def test_check_lists_what_differs_and_writes_nothing(tmp_path):
    target = tmp_path / "endpoints"
    shutil.copytree(ENDPOINTS_DIR, target)
    assert endpoint_gen.write(target, CATALOG, check=True) == []
    (target / "lumi" / "README.md").write_text("edited by hand\n")
    (target / "aurora" / SCHEMA_NAME).unlink()
    (target / "gone-cluster").mkdir()
    differ = endpoint_gen.write(target, CATALOG, check=True)
    assert differ == ["lumi/README.md", f"aurora/{SCHEMA_NAME}",
                      "gone-cluster/ (not in the catalog)"]
    assert (target / "lumi" / "README.md").read_text() == "edited by hand\n"
    assert endpoint_gen.write(target, CATALOG)[:2] == differ[:2]
    assert endpoint_gen.write(target, CATALOG, check=True) == ["gone-cluster/ (not in the catalog)"]


def test_the_generate_command_checks_and_exits_1_on_drift(tmp_path):
    import typer
    from typer.testing import CliRunner

    from braas_globus.endpoints_cli import endpoints_generate

    app = typer.Typer()
    app.command()(endpoints_generate)
    target = tmp_path / "endpoints"
    shutil.copytree(ENDPOINTS_DIR, target)
    runner = CliRunner()
    ok = runner.invoke(app, ["--check", "--target", str(target)])
    assert ok.exit_code == 0, ok.output
    (target / "karolina" / TEMPLATE_NAME).write_text("{# edited #}\n")
    drift = runner.invoke(app, ["--check", "--target", str(target)])
    assert drift.exit_code == 1
    assert f"karolina/{TEMPLATE_NAME}" in drift.output and GENERATE in drift.output
    fixed = runner.invoke(app, ["--target", str(target)])
    assert fixed.exit_code == 0 and f"karolina/{TEMPLATE_NAME}" in fixed.output
    assert (target / "karolina" / TEMPLATE_NAME).read_bytes() == (
        ENDPOINTS_DIR / "karolina" / TEMPLATE_NAME).read_bytes()


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_schema_checked_is_the_generated_one(cluster):
    # So the injection corpus below, run on the committed files, runs on the generated schemas.
    assert load_schema(cluster) == endpoint_gen.make_schema_value(CATALOG.get(cluster))


def test_catalog_text_that_could_break_a_template_is_refused():
    c = CATALOG.get("karolina")
    bad_setup = c.model_copy(update={"container": c.container.model_copy(
        update={"setup": ("module load {{ x }}",)})})
    with pytest.raises(ValueError, match="brace or a control character"):
        endpoint_gen.make_template(bad_setup)
    bad_flag = c.model_copy(update={"container": c.container.model_copy(
        update={"gpu_flags": ('--nv"; id; "',)})})
    with pytest.raises(ValueError, match="not a plain word"):
        endpoint_gen.make_template(bad_flag)


def test_cores_that_differ_by_partition_are_looked_up(tmp_path, monkeypatch):
    # Karolina's partitions have 128 or 768 cores; asked for as BSC asks (sbatch -c).
    from braas_globus import endpoint_config

    c = CATALOG.get("karolina").model_copy(update={"request_cores": True})
    folder = tmp_path / "karolina"
    folder.mkdir()
    (folder / TEMPLATE_NAME).write_text(endpoint_gen.make_template(c))
    (folder / SCHEMA_NAME).write_text(endpoint_gen.make_schema(c))
    monkeypatch.setattr(endpoint_config, "ENDPOINTS_DIR", tmp_path)
    load_schema.cache_clear()
    try:
        for partition, cores in (("qcpu", 128), ("qfat", 768), ("qviz", 64)):
            config = load_rendered_config(render_user_config("karolina", base("karolina",
                                                                               partition)))
            try:
                assert config.engine.executor.provider.cores_per_node == cores
            finally:
                config.engine.shutdown()
    finally:
        load_schema.cache_clear()

# ---- files and schemas agree with the catalog ----

def test_one_endpoint_folder_per_catalog_cluster():
    folders = sorted(p.name for p in ENDPOINTS_DIR.iterdir() if p.is_dir())
    assert folders == sorted(CLUSTERS)
    for cluster in CLUSTERS:
        for name in (TEMPLATE_NAME, SCHEMA_NAME, "README.md"):
            assert (ENDPOINTS_DIR / cluster / name).is_file(), f"{cluster}/{name}"


def test_unknown_cluster_has_no_template():
    with pytest.raises(NotFoundError, match="unknown cluster 'nope'"):
        template_dir("nope")
    with pytest.raises(NotFoundError):
        render_user_config("nope", {})


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_schema_is_strict(cluster):
    schema = load_schema(cluster)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["account", "partition", "walltime_minutes"]
    for name, prop in schema["properties"].items():
        if prop["type"] == "string":
            assert "enum" in prop or (
                prop["pattern"].startswith("^") and prop["pattern"].endswith(r"(?!\n)$")
                and prop["maxLength"] <= 254), name
        else:
            assert prop["type"] == "integer" and prop["minimum"] >= 1 and "maximum" in prop, name


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_schema_partitions_and_account_come_from_the_catalog(cluster):
    c = CATALOG.get(cluster)
    props = load_schema(cluster)["properties"]
    assert props["partition"]["enum"] == list(c.partitions)
    assert props["account"]["pattern"] == c.account_pattern


@pytest.mark.parametrize(("cluster", "partition"),
                         [(c.name, p) for c in CATALOG.clusters.values() for p in c.partitions])
def test_schema_limits_stay_within_the_centres(cluster, partition):
    p = CATALOG.get(cluster).get(partition)
    lim = limits(cluster, partition)
    if p.max_walltime_minutes:
        assert lim["walltime"] <= p.max_walltime_minutes
    assert lim["nodes_min"] >= p.min_nodes
    assert lim["needs_nodes"] == (p.min_nodes > 1)
    assert lim["nodes_min"] <= lim["nodes_max"] <= (p.max_nodes or lim["nodes_max"])
    assert 1 <= lim["blocks_max"] <= 4


# ---- render with the endpoint's renderer, load with its loader, submit with Parsl ----

MATRIX = [(c.name, p, v) for c in CATALOG.clusters.values() for p in c.partitions
          for v in ("min", "max")]


@pytest.mark.parametrize(("cluster", "partition", "variant"), MATRIX)
def test_rendered_config_carries_what_the_user_sent(cluster, partition, variant,
                                                    scheduler_commands, tmp_path):
    c, p = CATALOG.get(cluster), CATALOG.get(cluster).get(partition)
    opts = options(cluster, partition, variant)
    config = load_rendered_config(render_user_config(cluster, opts))
    htex = config.engine.executor
    provider = htex.provider
    try:
        assert type(provider).__name__ == {"slurm": "SlurmProvider",
                                           "pbspro": "PBSProProvider"}[c.scheduler]
        assert getattr(provider, QUEUE_OPTION[c.queue_option]) == partition
        assert provider.account == opts["account"]
        assert provider.walltime == hhmmss(opts["walltime_minutes"])
        assert provider.nodes_per_block == opts.get("nodes_per_block", 1)
        assert (provider.init_blocks, provider.min_blocks) == (0, 0)
        assert provider.max_blocks == opts.get("max_blocks", 1)
        # One render worker per GPU device, or one per CPU node.
        workers = p.devices_per_node if p.kind == "gpu" else 1
        assert htex.max_workers_per_node == workers
        assert htex.available_accelerators == [str(i) for i in range(p.devices_per_node)]
        # The worker environment: the centre's, never the user's.
        init = provider.worker_init
        for line in c.container.setup:
            assert line in init.splitlines()
        assert f"export BRAAS_CLUSTER={cluster}" in init
        assert f"export BRAAS_CONTAINER_RUNTIME={c.container.runtime}" in init
        assert f"export BRAAS_CYCLES_DEVICE={c.cycles_device_for(partition)}" in init
        # One worker per GPU device shares the node's cores; a CPU node's one worker has all.
        if p.kind == "gpu":
            threads = p.cores_per_node // p.devices_per_node
            assert f"export BRAAS_CPU_THREADS={threads}" in init.splitlines()
        else:
            assert "BRAAS_CPU_THREADS" not in init
        flags = " ".join(c.container_flags_for(partition))
        assert f'export BRAAS_CONTAINER_FLAGS="{flags}"' in init
        assert opts["account"] not in init
        # The batch job's end, from the walltime the provider got, first: before the module
        # loads, so that `date` runs as close to the job's start as it can.
        seconds = opts["walltime_minutes"] * 60
        assert init.splitlines()[0] == block_end_line(seconds)
        # No new task in the last 2 margins of the worker's own (default) margin.
        assert htex.drain_period == seconds - 2 * block_margin(seconds, environ={}) > 0
        # Loading ran no scheduler command but Parsl's sacct probe.
        assert set(scheduler_commands) <= {"sacct -X"}

        provider.script_dir = str(tmp_path)
        assert provider.submit("worker-command", tasks_per_node=1) is not None
        submit = scheduler_commands[-1]
        script_path = submit.split()[-1]
        script = open(script_path).read()
        if c.scheduler == "slurm":
            check_sbatch(c, p, opts, script, submit)
        else:
            check_qsub(c, p, opts, script, submit)
    finally:
        config.engine.shutdown()


def block_end_line(seconds: int) -> str:
    return (f"export BRAAS_BLOCK_SECONDS={seconds} "
            f"BRAAS_BLOCK_END=$(( $(date +%s) + {seconds} ))")


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("variant", ["min", "max"])
def test_the_batch_script_exports_the_blocks_end(cluster, variant, scheduler_commands,
                                                 tmp_path):
    """The batch script Parsl writes, run by bash: BRAAS_BLOCK_END is its start + walltime,
    in epoch seconds, and the worker reads it with the margin for that walltime."""
    opts = options(cluster, first_partition(cluster), variant)
    config = load_rendered_config(render_user_config(cluster, opts))
    try:
        provider = config.engine.executor.provider
        provider.script_dir = str(tmp_path)
        provider.submit("worker-command", tasks_per_node=1)
        script = open(scheduler_commands[-1].split()[-1]).read()
    finally:
        config.engine.shutdown()
    lines = [line for line in script.splitlines() if "BRAAS_BLOCK" in line]
    seconds = opts["walltime_minutes"] * 60
    assert lines == [block_end_line(seconds)]
    assert script.index(lines[0]) < script.index("worker-command")
    before = int(time.time())
    env = subprocess.run(["bash", "-c", f"{lines[0]}\nenv"], capture_output=True, text=True,
                         check=True, timeout=10, env={"PATH": os.environ["PATH"]}).stdout
    after = int(time.time())
    exported = dict(line.split("=", 1) for line in env.splitlines()
                    if line.startswith("BRAAS_BLOCK"))
    assert exported["BRAAS_BLOCK_SECONDS"] == str(seconds)
    assert before + seconds <= int(exported["BRAAS_BLOCK_END"]) <= after + seconds
    expected_margin = 15 if seconds == 60 else 60
    assert block_end(exported) == (int(exported["BRAAS_BLOCK_END"]), expected_margin)


def check_sbatch(c, p, opts, script, submit):
    assert submit.split() == ["sbatch", submit.split()[-1]]
    expected = {
        f"#SBATCH --nodes={opts.get('nodes_per_block', 1)}",
        f"#SBATCH --time={opts['walltime_minutes']}",  # Parsl turns HH:MM:SS into minutes
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --exclusive",
        f"#SBATCH --{QUEUE_OPTION[c.queue_option]}={p.name}",
        f"#SBATCH --account={opts['account']}",
    }
    if p.kind == "gpu" and c.gpu_request == "gpus-per-node":
        expected.add(f"#SBATCH --gpus-per-node={p.gpus_per_node}")
    if p.kind == "gpu" and c.gpu_request == "gres":
        expected.add(f"#SBATCH --gres=gpu:{p.gpus_per_node}")
    if c.request_cores:  # MareNostrum 5
        expected.add(f"#SBATCH --cpus-per-task={p.cores_per_node}")
    if "email" in opts:
        expected |= {f"#SBATCH --mail-user={opts['email']}", "#SBATCH --mail-type=END,FAIL"}
    own = ("#SBATCH --job-name=", "#SBATCH --output=", "#SBATCH --error=")
    directives = [line for line in script.splitlines()
                  if line.startswith("#SBATCH") and not line.startswith(own)]
    assert sorted(directives) == sorted(expected)


def check_qsub(c, p, opts, script, submit):
    assert submit.split() == ["qsub", "-q", p.name, "-A", opts["account"], submit.split()[-1]]
    select = f"#PBS -l select={opts.get('nodes_per_block', 1)}:ncpus={p.cores_per_node}"
    if c.gpu_request == "select-ngpus":
        select += f":ngpus={p.gpus_per_node}"
    expected = {"#PBS -S /bin/bash", "#PBS -m n", select,
                f"#PBS -l walltime={hhmmss(opts['walltime_minutes'])}", *c.directives}
    if "email" in opts:
        # Parsl writes "-m n" first; ours comes later, and qsub keeps the last one.
        expected |= {f"#PBS -M {opts['email']}", "#PBS -m ae"}
    own = ("#PBS -N ", "#PBS -o ", "#PBS -e ")
    directives = [line for line in script.splitlines()
                  if line.startswith("#PBS") and not line.startswith(own)]
    assert sorted(directives) == sorted(expected)
    assert "mpiexec --cpu-bind none --ppn 1 -n" in script


@pytest.mark.parametrize(("minutes", "walltime"), [
    (1, "00:01:00"), (59, "00:59:00"), (60, "01:00:00"), (61, "01:01:00"), (90, "01:30:00"),
    (1439, "23:59:00"), (2880, "48:00:00"), (8640, "144:00:00"),
])
def test_walltime_minutes_become_hh_mm_ss(minutes, walltime):
    opts = {"account": "OPEN-1-2", "partition": "qcpu_long", "walltime_minutes": minutes}
    config = load_rendered_config(render_user_config("karolina", opts))
    try:
        assert config.engine.executor.provider.walltime == walltime
        assert re.fullmatch(r"[0-9]{2,3}:[0-5][0-9]:00", walltime)
    finally:
        config.engine.shutdown()


def test_whole_number_floats_still_render_as_integers():
    # JSON Schema counts 60.0 as an integer; the template's |int keeps Parsl's int fields ints.
    opts = {"account": "OPEN-1-2", "partition": "qcpu", "walltime_minutes": 60.0,
            "nodes_per_block": 2.0}
    config = load_rendered_config(render_user_config("karolina", opts))
    try:
        assert config.engine.executor.provider.nodes_per_block == 2
        assert config.engine.executor.provider.walltime == "01:00:00"
    finally:
        config.engine.shutdown()


# ---- what users must not be able to send ----

LOOKALIKES = str.maketrans("aceopxACEOPX", "асеорхАСЕОРХ")  # Cyrillic


def lookalike(good: str) -> str:
    changed = good.translate(LOOKALIKES)
    if changed == good:  # no Cyrillic twin: use the fullwidth form of the first letter
        changed = chr(ord(good[0]) + 0xFEE0) + good[1:]
    assert changed != good
    return changed


def attacks(good: str) -> list[tuple[str, object]]:
    return [
        ("newline-sbatch", good + "\n#SBATCH --uid=0"),
        ("newline-pbs", good + "\n#PBS -l select=999"),
        ("trailing-newline", good + "\n"),
        ("carriage-return", good + "\r"),
        ("command-substitution", "$(id)"),
        ("command-substitution-after", good + "$(touch /tmp/pwned)"),
        ("backticks", good + "`id`"),
        ("variable", good + "$HOME"),
        ("double-quote", good + '"'),
        ("single-quote", good + "'"),
        ("semicolon", good + ";id"),
        ("and-and", good + " && id"),
        ("pipe", good + "|id"),
        ("redirect", good + ">/etc/x"),
        ("space", good + " x"),
        ("tab", good + "\tx"),
        ("nul", good + "\x00"),
        ("yaml-mapping", good + ": x"),
        ("yaml-flow", "{" + good + "}"),
        ("yaml-anchor", "&a " + good),
        ("jinja-expression", "{{ 7*7 }}"),
        ("jinja-statement", "{% raw %}" + good),
        ("option", "--uid=0"),
        ("leading-dash", "-" + good),
        ("overlong", good * 40),
        ("empty", ""),
        ("lookalike", lookalike(good)),
        ("integer", 12345),
        ("list", [good]),
        ("null", None),
    ]


def first_partition(cluster: str) -> str:
    return next(iter(CATALOG.get(cluster).partitions))


def good_value(cluster: str, field: str) -> str:
    return EMAIL if field == "email" else options(cluster, first_partition(cluster))[field]


STRING_FIELDS = ["account", "partition", "email"]
INJECTIONS = [(cluster, field, name, value)
              for cluster in CLUSTERS for field in STRING_FIELDS
              for name, value in attacks(good_value(cluster, field))]


@pytest.mark.parametrize(("cluster", "field", "attack", "value"), INJECTIONS,
                         ids=[f"{c}-{f}-{a}" for c, f, a, _ in INJECTIONS])
def test_injection_is_refused(cluster, field, attack, value):
    opts = {**options(cluster, first_partition(cluster)), field: value}
    with pytest.raises(UsageError) as refused:
        validate_user_config(cluster, opts)
    message = str(refused.value)
    assert f": {field}: " in message and "\n" not in message


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("field", STRING_FIELDS)
def test_the_centres_own_renderer_refuses_the_same(cluster, field):
    # The endpoint checks the schema itself: the guard holds without braas-globus's check.
    good = good_value(cluster, field)
    for value in (good + "\n", good + "\n#SBATCH --uid=0\n#PBS -l select=999"):
        opts = {**options(cluster, first_partition(cluster)), field: value}
        with pytest.raises(jsonschema.ValidationError):
            endpoint_render(cluster, opts, load_schema(cluster))


def test_without_the_schema_a_directive_reaches_the_batch_script(scheduler_commands, tmp_path):
    # Why the schema matters: the renderer's JSON quoting keeps YAML intact, not sbatch.
    opts = {"account": "OPEN-1-2", "partition": "qcpu\n#SBATCH --uid=0", "walltime_minutes": 5}
    config = load_rendered_config(endpoint_render("karolina", opts, schema=None))
    try:
        provider = config.engine.executor.provider
        provider.script_dir = str(tmp_path)
        provider.submit("worker-command", tasks_per_node=1)
        script = open(scheduler_commands[-1].split()[-1]).read()
        assert "#SBATCH --uid=0" in script.splitlines()
    finally:
        config.engine.shutdown()


def base(cluster="karolina", partition="qcpu"):
    return options(cluster, partition)


@pytest.mark.parametrize(("cluster", "opts", "field"), [
    ("karolina", {**base(), "walltime_minutes": 0}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": -5}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": 2881}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": 10**20}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": "60"}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": "01:00:00"}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": 1.5}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": True}, "walltime_minutes"),
    ("karolina", {**base(), "walltime_minutes": None}, "walltime_minutes"),
    ("karolina", {**base(), "nodes_per_block": 0}, "nodes_per_block"),
    ("karolina", {**base(), "nodes_per_block": 9}, "nodes_per_block"),
    ("karolina", {**base(), "nodes_per_block": "2"}, "nodes_per_block"),
    ("karolina", {**base(), "max_blocks": 0}, "max_blocks"),
    ("karolina", {**base(), "max_blocks": 5}, "max_blocks"),
    ("karolina", {**base(), "max_blocks": [1]}, "max_blocks"),
    # Per-partition limits, under the cluster-wide ones.
    ("karolina", {**base("karolina", "qcpu_exp"), "walltime_minutes": 61}, "walltime_minutes"),
    ("karolina", {**base("karolina", "qfat"), "nodes_per_block": 2}, "nodes_per_block"),
    ("lumi", {**base("lumi", "dev-g"), "walltime_minutes": 181}, "walltime_minutes"),
    ("polaris", {**base("polaris", "prod"), "nodes_per_block": 9}, "nodes_per_block"),
    ("polaris", {**base("polaris", "prod"), "walltime_minutes": 181}, "walltime_minutes"),
    ("polaris", {"account": "myproject", "partition": "prod", "walltime_minutes": 5},
     "nodes_per_block"),
])
def test_out_of_range_numbers_are_refused(cluster, opts, field):
    with pytest.raises(UsageError, match=rf"{cluster}: {field}: "):
        validate_user_config(cluster, opts)


@pytest.mark.parametrize("key", ["worker_init", "scheduler_options", "endpoint_setup",
                                 "requirements", "parent_config", "_GC", "Account",
                                 "partition ", "queue", "qos", "gpus_per_node"])
def test_unknown_keys_are_refused(key):
    with pytest.raises(UsageError, match=re.escape(f"{key!r}: Additional properties")):
        validate_user_config("karolina", {**base(), key: "x"})


@pytest.mark.parametrize("key", ["account", "partition", "walltime_minutes"])
def test_missing_keys_are_named(key):
    opts = base()
    del opts[key]
    with pytest.raises(UsageError, match=rf"karolina: {key}: '{key}' is a required property"):
        validate_user_config("karolina", opts)


def test_a_long_bad_value_gives_a_short_message():
    with pytest.raises(UsageError) as refused:
        validate_user_config("karolina", {**base(), "account": "A" * 5000})
    assert len(str(refused.value)) < 300


def test_valid_options_pass():
    assert validate_user_config("karolina", options("karolina", "qgpu", "max")) is None


# ---- the admin READMEs ----

@pytest.mark.parametrize("cluster", CLUSTERS)
def test_readme_names_every_partition_and_the_schema(cluster):
    text = (template_dir(cluster) / "README.md").read_text()
    for partition in CATALOG.get(cluster).partitions:
        assert f"`{partition}`" in text, partition
    for needle in ("user_config_schema.json", "identity", "globus-compute-endpoint"):
        assert needle in text


def test_overview_readme_lists_every_cluster():
    text = (ENDPOINTS_DIR / "README.md").read_text()
    for cluster in CLUSTERS:
        assert f"({cluster}/README.md)" in text


def test_schema_files_are_plain_json():
    for cluster in CLUSTERS:
        json.loads((ENDPOINTS_DIR / cluster / SCHEMA_NAME).read_text())


# ---- an eleventh cluster: one catalog entry, generated, rendered, run ----

ELEVENTH = """
[clusters.eleventh]
title = "Eleventh (Test Centre)"
site = "Test Centre, Nowhere"
scheduler = "slurm"
arch = "x86_64"
queue_option = "partition"
gpu_vendor = "nvidia"
cycles_device = "CUDA"
gpu_request = "gres"
account_pattern = '^[a-z]{2,8}[0-9]{1,6}(?!\\n)$'
example_account = "tc123"
scratch = ["/scratch/{project}"]
docs = "https://example.org/eleventh"

[clusters.eleventh.container]
runtime = "apptainer"
setup = ["module load apptainer"]
gpu_flags = ["--nv"]

[clusters.eleventh.partitions]
debug = { kind = "cpu", cores_per_node = 32, max_walltime_minutes = 30, max_nodes = 2 }
standard-g = { kind = "gpu", cores_per_node = 64, gpus_per_node = 4, gpu_model = "NVIDIA A100", max_walltime_minutes = 120 }
"""
ELEVENTH_USER = {"account": "tc123", "partition": "debug", "walltime_minutes": 10}


@pytest.fixture
def eleventh(tmp_path, monkeypatch) -> Iterator[Path]:
    """A copy of the catalog with an eleventh cluster (BRAAS_CATALOG points at it), and its
    endpoint folder generated into tmp_path/endpoints, which endpoint_config reads."""
    from braas_globus import endpoint_config

    shipped = (Path(endpoint_gen.__file__).parent / "catalog" / "clusters.toml").read_text()
    catalog_file = tmp_path / "clusters.toml"
    catalog_file.write_text(shipped + ELEVENTH, encoding="utf-8")
    monkeypatch.setenv("BRAAS_CATALOG", str(catalog_file))
    catalog = load_catalog()
    assert list(catalog.clusters) == [*CLUSTERS, "eleventh"]
    target = tmp_path / "endpoints"
    written = endpoint_gen.write(target, catalog)
    assert f"eleventh/{TEMPLATE_NAME}" in written
    monkeypatch.setattr(endpoint_config, "ENDPOINTS_DIR", target)
    monkeypatch.setitem(ACCOUNTS, "eleventh", ELEVENTH_USER["account"])
    load_schema.cache_clear()
    yield target
    load_schema.cache_clear()


def test_the_catalog_can_come_from_braas_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAAS_CATALOG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError):
        load_catalog()
    monkeypatch.delenv("BRAAS_CATALOG")
    assert load_catalog() is CATALOG


def test_an_eleventh_cluster_is_one_catalog_entry(eleventh, scheduler_commands, tmp_path):
    folder = eleventh / "eleventh"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [TEMPLATE_NAME, SCHEMA_NAME, "README.md"])
    test_schema_is_strict("eleventh")
    c = load_catalog().get("eleventh")
    props = load_schema("eleventh")["properties"]
    assert props["partition"]["enum"] == ["debug", "standard-g"]
    assert props["account"]["pattern"] == c.account_pattern
    assert limits("eleventh", "debug")["walltime"] == 30
    assert limits("eleventh", "debug")["nodes_max"] == 2
    readme = (folder / "README.md").read_text()
    assert "`debug`" in readme and "`standard-g`" in readme and "Eleventh (Test Centre)" in readme
    # Every partition renders with the real renderer and submits through Parsl.
    for partition in c.partitions:
        for variant in ("min", "max"):
            opts = options("eleventh", partition, variant)
            config = load_rendered_config(render_user_config("eleventh", opts))
            try:
                provider = config.engine.executor.provider
                p = c.get(partition)
                assert provider.partition == partition
                assert f"export BRAAS_CYCLES_DEVICE={c.cycles_device_for(partition)}" in (
                    provider.worker_init)
                provider.script_dir = str(tmp_path)
                provider.submit("worker-command", tasks_per_node=1)
                submit = scheduler_commands[-1]
                check_sbatch(c, p, opts, open(submit.split()[-1]).read(), submit)
            finally:
                config.engine.shutdown()


def test_an_eleventh_cluster_refuses_the_injection_corpus(eleventh):
    for field in STRING_FIELDS:
        good = EMAIL if field == "email" else options("eleventh", "debug")[field]
        for name, value in attacks(good):
            opts = {**options("eleventh", "debug"), field: value}
            with pytest.raises(UsageError):
                validate_user_config("eleventh", opts)
            if name == "newline-sbatch":
                with pytest.raises(jsonschema.ValidationError):
                    endpoint_render_from(eleventh, "eleventh", opts, load_schema("eleventh"))


def endpoint_render_from(endpoints: Path, cluster: str, opts: dict, schema: dict) -> str:
    path = endpoints / cluster / TEMPLATE_NAME
    return render_config_user_template(
        parent_config=CoreEndpointConfig(),
        user_config_template=load_user_config_template(path),
        user_config_template_path=path,
        mapped_identity=MappedPosixIdentity(pwd.getpwuid(os.getuid()), [], None),
        user_config_schema=schema,
        user_opts=opts,
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_eleventh_cluster_renders_through_the_real_engine_on_slurm(
        eleventh, slurm_cluster, scene, tmp_path, monkeypatch):
    """The generated template of a cluster that is only a catalog entry: rendered as the
    centre's endpoint renders it, loaded into a real GlobusComputeEngine, one render task in
    a real sbatch job on the local Slurm. Only the Globus cloud relay is bypassed."""
    from braas_globus.dispatch.compute_task import render_on_worker
    from braas_globus.worker.image_check import is_valid_image
    from tests.engines import VENV_BIN, OfflineEndpoint, build_engine, make_job_root, render_task
    from tests.schedulers import slurm_job

    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    work = tmp_path / "endpoint"
    work.mkdir()
    engine = build_engine("eleventh", ELEVENTH_USER, work, endpoints=eleventh)
    config = (work / "eleventh-config.yaml").read_text()
    assert "export BRAAS_CLUSTER=eleventh" in config
    source = scene("anim6")
    root = make_job_root(tmp_path / "job", source)
    with OfflineEndpoint(engine, work / "run") as ep:
        future = ep.submit(render_on_worker, render_task(root, source, "1-2"), str(root))
        record, _packed = ep.result(future, timeout=180)
        assert record["state"] == "FINISHED", record
        assert (record["missing"], record["exit_code"]) == ("", 0), record
        for frame in (1, 2):
            assert is_valid_image(root / "out" / f"{frame:06d}.png")
        [job_id] = ep.job_ids()
        job = slurm_job(job_id)
        assert (job["Partition"], job["Account"], job["TimeLimit"]) == (
            "debug", "tc123", "00:10:00")
