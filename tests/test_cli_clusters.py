"""`braas-globus clusters` and `braas-globus endpoints render`, over the catalog and templates."""

import json
import sys


def test_clusters_lists_every_supported_centre(cli):
    result = cli("clusters", "--json")
    assert result.code == 0
    clusters = {c["cluster"]: c for c in result.json()}
    assert set(clusters) == {"barbora", "karolina", "lumi", "leonardo", "marenostrum5-gpp",
                             "marenostrum5-acc", "vista", "frontera", "polaris", "aurora"}
    assert clusters["vista"]["arch"] == "aarch64"
    assert clusters["polaris"]["scheduler"] == "pbspro"
    assert clusters["lumi"]["cycles_device"] == "HIP"
    assert clusters["aurora"]["cycles_device"] == "ONEAPI"
    assert clusters["karolina"]["partitions"]["qgpu"] == "gpu"


def test_endpoints_render_shows_what_reaches_the_scheduler(cli, tmp_path):
    options = tmp_path / "opts.json"
    options.write_text(json.dumps({"account": "DD-24-1", "partition": "qcpu",
                                   "walltime_minutes": 90, "email": "artist@example.org"}))
    result = cli("endpoints", "render", "karolina", "--user-config", options)
    assert result.code == 0, result.stderr
    assert 'partition: "qcpu"' in result.stdout and 'walltime: "01:30:00"' in result.stdout
    assert "--mail-user=artist@example.org" in result.stdout


def test_endpoints_render_refuses_injection_with_exit_2(cli):
    result = cli("endpoints", "render", "polaris", "--option", "account=proj$(id)",
                 "--option", "partition=debug", "--option", "walltime_minutes=30")
    assert result.code == 2
    assert result.stderr.startswith("error: endpoint option for polaris: account")


def test_endpoints_render_unknown_cluster(cli):
    result = cli("endpoints", "render", "summit", "--option", "account=x")
    assert result.code == 2 and "unknown cluster 'summit'" in result.stderr


def test_commands_that_need_no_store_create_none(cli, home):
    """`clusters`, `endpoints render`, `presets list` and `function` open no job store, so a
    fresh BRAAS_HOME gets no jobs.sqlite, and they read no config.toml (none of them has a
    setting there): one with a bad field does not stop them. `list` needs both."""
    home.mkdir(parents=True)
    (home / "config.toml").write_text("local_workers = 0\nno_such_setting = 1\n")
    for args in (["clusters", "--json"], ["--help"],
                 ["endpoints", "render", "karolina", "--option", "account=DD-24-1",
                  "--option", "partition=qcpu", "--option", "walltime_minutes=30"],
                 ["presets", "list", "--json"], ["presets", "--json"], ["function", "--json"]):
        result = cli(*args)
        assert result.code == 0, (args, result.stderr)
    assert sorted(p.name for p in home.iterdir()) == ["config.toml"]
    result = cli("list")  # the store's command still reads the settings, and says what is wrong
    assert result.code == 2 and "unknown settings ['no_such_setting']" in result.stderr
    assert not (home / "jobs.sqlite").exists()
    (home / "config.toml").unlink()
    assert cli("clusters").code == 0 and not (home / "jobs.sqlite").exists()
    assert cli("list").code == 0 and (home / "jobs.sqlite").exists()


def test_endpoints_render_without_the_endpoint_package_says_what_to_install(cli, monkeypatch):
    """The quick start installs no `[endpoint]` extra: one line saying what to install,
    never a traceback; bad options are still refused first, with exit 2."""
    monkeypatch.setitem(sys.modules, "globus_compute_endpoint", None)  # as if not installed
    result = cli("endpoints", "render", "karolina", "--option", "account=DD-24-1",
                 "--option", "partition=qcpu", "--option", "walltime_minutes=30")
    assert result.code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "pip install 'braas-globus[endpoint]'" in result.stderr
    bad = cli("endpoints", "render", "karolina", "--option", "account=DD-24-1;id",
              "--option", "partition=qcpu", "--option", "walltime_minutes=30")
    assert bad.code == 2 and "karolina: account" in bad.stderr


def test_a_bare_command_shows_its_help_once_and_version_says_the_version(cli):
    from braas_globus import __version__

    for args in ((), ("container",), ("--help",)):
        result = cli(*args)
        assert result.code == 0 and result.stdout.count("Usage: braas-globus") == 1, args
    result = cli("--version")
    assert (result.code, result.stdout) == (0, f"braas-globus {__version__}\n")
