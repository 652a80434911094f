"""Centre endpoint templates: check a user's endpoint options and render them.

Each cluster in the catalog has ``endpoints/<cluster>/`` with the template and the schema
that its multi-user Globus Compute endpoint uses. Rendering here goes through
globus-compute-endpoint's own renderer and config loader, so what passes here is what the
centre's endpoint would build. The client calls ``validate_user_config`` before it submits.

The templates live at the repository root (``endpoints/``), generated from the cluster
catalog by ``braas_globus.endpoint_gen`` (``braas-globus endpoints generate``); a wheel ships
them as the ``braas_globus.endpoints`` package data.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from braas_globus.catalog import load_catalog
from braas_globus.errors import BraasError, NotFoundError, UsageError

if TYPE_CHECKING:
    from globus_compute_endpoint.endpoint.config import UserEndpointConfig

    from braas_globus.presets import ClusterPreset

def _endpoints_dir() -> Path:
    """endpoints/ of this checkout, or the copy an installed wheel ships as package data."""
    checkout = Path(__file__).resolve().parents[1] / "endpoints"
    if checkout.is_dir():
        return checkout
    from importlib.util import find_spec

    spec = find_spec("braas_globus.endpoints")  # a namespace package: templates, no code
    if spec is None:
        return checkout
    assert spec.submodule_search_locations is not None  # a package's spec has them
    return Path(list(spec.submodule_search_locations)[0])


ENDPOINTS_DIR = _endpoints_dir()
TEMPLATE_NAME = "user_config_template.yaml.j2"
SCHEMA_NAME = "user_config_schema.json"


def template_dir(cluster: str) -> Path:
    """``endpoints/<cluster>``; NotFoundError for a cluster not in the catalog."""
    load_catalog().get(cluster)
    folder = ENDPOINTS_DIR / cluster
    if not (folder / TEMPLATE_NAME).is_file():
        raise NotFoundError(f"no endpoint template for {cluster!r} in {folder}")
    return folder


@cache
def load_schema(cluster: str) -> dict[str, Any]:
    """The cluster's user_config_schema.json (read once; do not change the dict)."""
    schema: dict[str, Any] = json.loads((template_dir(cluster) / SCHEMA_NAME)
                                        .read_text(encoding="utf-8"))
    return schema


def validate_user_config(cluster: str, user_config: dict[str, Any]) -> None:
    """Raise UsageError, one line naming the field, unless the centre would accept it."""
    import jsonschema  # comes with globus-compute-endpoint

    validator = jsonschema.Draft202012Validator(load_schema(cluster))
    error = jsonschema.exceptions.best_match(validator.iter_errors(user_config))
    if error is None:
        return
    field = ".".join(str(p) for p in error.absolute_path) or _field_of(error)
    where = ""
    if "allOf" in error.absolute_schema_path:  # a per-partition limit
        where = f" on partition {user_config.get('partition')!r}"
    # jsonschema puts repr(value) in its messages: one line, but maybe a long one.
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    raise UsageError(f"endpoint option for {cluster}: {field}: {message}{where}")


def user_config_for(preset: ClusterPreset, spec: dict[str, Any]) -> dict[str, Any]:
    """The options a job sends to a cluster preset's endpoint, checked against the centre's
    schema: at submit before anything is written, and again as its tasks are sent."""
    config = {"account": preset.account, "partition": preset.partition,
              "walltime_minutes": spec["walltime_minutes"],
              "nodes_per_block": preset.nodes_per_block, "max_blocks": preset.max_blocks}
    if spec.get("email"):
        config["email"] = spec["email"]
    validate_user_config(preset.cluster, config)
    return config


def _field_of(error: Any) -> str:
    """Best name for a top-level error (unknown key, missing key, wrong type)."""
    if error.validator == "required":
        return str(error.message.split("'")[1])
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ", ".join(repr(k) for k in extra) or "(options)"
    return "(options)"


def render_user_config(cluster: str, user_config: dict[str, Any]) -> str:
    """The endpoint config YAML the centre's endpoint would build for these options."""
    import os
    import pwd  # POSIX only, like the endpoint; validate_user_config runs anywhere

    from globus_compute_endpoint.endpoint.config import CoreEndpointConfig
    from globus_compute_endpoint.endpoint.config.utils import (
        load_user_config_template,
        render_config_user_template,
    )
    from globus_compute_endpoint.endpoint.identity_mapper import MappedPosixIdentity
    from jinja2 import TemplateError

    validate_user_config(cluster, user_config)
    path = template_dir(cluster) / TEMPLATE_NAME
    # The renderer wants the endpoint's mapped local user; the templates do not use it.
    me = MappedPosixIdentity(pwd.getpwuid(os.getuid()), [], None)
    try:
        rendered: str = render_config_user_template(
            parent_config=CoreEndpointConfig(),
            user_config_template=load_user_config_template(path),
            user_config_template_path=path,
            mapped_identity=me,
            user_config_schema=load_schema(cluster),
            user_opts=dict(user_config),
        )
        return rendered
    except TemplateError as err:
        raise BraasError(f"the endpoint template {path} is broken: {err}") from err


def load_rendered_config(text: str) -> UserEndpointConfig:
    """A rendered config, loaded and checked by globus-compute-endpoint.

    Building it constructs the engine and provider; Parsl's SlurmProvider runs
    ``sacct -X`` once while doing so. Call ``config.engine.shutdown()`` when done.
    """
    from click import ClickException
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    try:
        return load_config_yaml(text)
    except ClickException as err:
        raise BraasError(f"the rendered endpoint config does not load: {err.message}") from err
