"""`braas-globus clusters`: the catalog's HPC clusters. Needs no settings and no store."""

from __future__ import annotations

from rich.table import Table

from ..output import Output
from .common import JsonOption, LazyService, run


def clusters(as_json: JsonOption = False) -> None:
    """List the supported HPC clusters from the catalog: scheduler, CPU, GPUs, partitions."""

    def command(out: Output, service: LazyService) -> None:
        from ..catalog import load_catalog

        catalog = load_catalog()
        table = Table("cluster", "name", "scheduler", "arch", "GPU device", "partitions")
        rows = []
        for key, cluster in catalog.clusters.items():
            partitions = {name: part.kind for name, part in cluster.partitions.items()}
            rows.append({"cluster": key, "title": cluster.title, "scheduler": cluster.scheduler,
                         "arch": cluster.arch, "cycles_device": cluster.cycles_device,
                         "partitions": partitions})
            table.add_row(key, cluster.title, cluster.scheduler, cluster.arch,
                          cluster.cycles_device or "-",
                          ", ".join(f"{n} ({k})" for n, k in partitions.items()))
        out.data(rows)
        out.table(table)

    run(as_json, command)
