"""Which Globus Compute function renders: one id per version of ``compute_task.py``.

A centre that sets ``allowed_functions`` on its endpoint runs only the ids it lists, so
every job (and ``presets test``'s probe) sends the same function: ``render_on_worker``,
whose version is the sha256 of ``compute_task.py``'s source.

- A release of braas-globus may ship the id the project registered as a public function
  for that source (``RELEASED``): then every user sends that one id, and a centre lists one.
- Otherwise the first submit registers it under the user's own login and records the id in
  ``BRAAS_HOME/globus/functions.json``; later jobs reuse it (``logout`` forgets it).

``braas-globus function`` prints the id to give the centre (``--register`` registers it now).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..disk import write_atomically
from . import compute_task

if TYPE_CHECKING:
    from globus_compute_sdk import Client as ComputeClient

#: compute_task.py digest -> the public function id the project registered for it.
#: Filled in at release (`braas-globus function --register --public` by a maintainer); a
#: digest not listed here is registered by each user's own login.
RELEASED: dict[str, str] = {}


@dataclass(frozen=True)
class RenderFunction:
    digest: str  # sha256 of compute_task.py's source
    function_id: str | None  # None: not registered yet
    origin: str  # "release", "your login" or "not registered"


def source_digest() -> str:
    return hashlib.sha256(inspect.getsource(compute_task).encode()).hexdigest()


def functions_record(home: Path) -> Path:
    """The function ids this login registered, by source digest."""
    return home / "globus" / "functions.json"


def _recorded(home: Path) -> dict[str, str]:
    try:
        known = json.loads(functions_record(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in known.items() if isinstance(v, str)} \
        if isinstance(known, dict) else {}


def known_function(home: Path) -> RenderFunction:
    """The render function's id for this source, without asking Globus."""
    digest = source_digest()
    if digest in RELEASED:
        return RenderFunction(digest, RELEASED[digest], "release")
    recorded = _recorded(home).get(digest)
    return RenderFunction(digest, recorded, "your login" if recorded else "not registered")


def register_function(compute: ComputeClient, home: Path, public: bool = False
                      ) -> RenderFunction:
    """Register ``render_on_worker`` by source (a centre's worker has no braas_globus to
    import it from) and record its id; ``compute`` is a globus_compute_sdk Client."""
    from globus_compute_sdk.serialize import ComputeSerializer, DillCodeSource

    # DillCodeSource's __init__ has no annotations in globus-compute-sdk
    code = DillCodeSource()  # type: ignore[no-untyped-call]
    compute.fx_serializer = ComputeSerializer(strategy_code=code)
    function_id = str(compute.register_function(
        compute_task.render_on_worker, public=public,
        description="braas-globus: render one task of frames"))
    digest = source_digest()
    record = functions_record(home)
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps({**_recorded(home), digest: function_id})
    write_atomically(record, lambda partial: partial.write_text(text, encoding="utf-8"))
    return RenderFunction(digest, function_id, "your login")


def render_function_id(compute: ComputeClient, home: Path) -> str:
    """The id every job sends: the release's, else this login's, registered on first use."""
    known = known_function(home)
    if known.function_id is not None:
        return known.function_id
    return str(register_function(compute, home).function_id)
