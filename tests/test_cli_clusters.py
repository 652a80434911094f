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
