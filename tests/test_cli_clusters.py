"""`braas-globus clusters` and `braas-globus endpoints render`, over the catalog and templates."""

import json


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
