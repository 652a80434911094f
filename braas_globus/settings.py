"""Where braas-globus keeps its files, and the user's settings.

``BRAAS_HOME`` (or the platformdirs data folder) holds:

    config.toml      settings (below); optional
    jobs.sqlite      the job store
    jobs/<job>/      one folder per job: in/ out/ log/ job/
    objects/         content-addressed copies of staged files (sha256), shared by jobs

config.toml keys: ``blender`` (path to a Blender executable), ``local_workers``
(how many tasks this machine renders at once, over all its jobs; default 1, since
Cycles already uses every core), ``globus_client_id`` (the Globus native app's client id;
``BRAAS_GLOBUS_CLIENT_ID`` overrides it), ``project_root`` (a folder holding your projects:
scenes inside it may stage any file inside it; see ``project.py``).
"""

from __future__ import annotations

import os
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import UsageError
from .worker import job_layout


def expand_user(path: str | Path) -> Path:
    """``~`` and ``~user`` expanded where they name a home; an unknown user's ``~name`` stays
    as written (Path.expanduser raises there, which no user should see as a traceback)."""
    return Path(os.path.expanduser(path))


def braas_home() -> Path:
    configured = os.environ.get("BRAAS_HOME")
    return expand_user(configured).resolve() if configured else \
        platformdirs.user_data_path("braas-globus", appauthor=False)


@dataclass(frozen=True)
class Settings:
    home: Path
    blender: str | None = None
    local_workers: int = 1
    globus_client_id: str | None = None
    project_root: Path | None = None

    @property
    def jobs_dir(self) -> Path:
        return self.home / job_layout.JOBS

    @property
    def objects_dir(self) -> Path:
        return self.home / job_layout.OBJECTS

    @property
    def store_path(self) -> Path:
        return self.home / "jobs.sqlite"


def load_settings() -> Settings:
    home = braas_home()
    config_path = home / "config.toml"
    values: dict[str, Any] = {}
    if config_path.exists():
        try:
            values = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise UsageError(f"{config_path}: not valid TOML ({err})") from err
    unknown = set(values) - {"blender", "local_workers", "globus_client_id", "project_root"}
    if unknown:
        raise UsageError(f"{config_path}: unknown settings {sorted(unknown)}")
    workers = values.get("local_workers", 1)
    if not isinstance(workers, int) or not 1 <= workers <= 64:
        raise UsageError(f"{config_path}: local_workers must be a whole number from 1 to 64")
    blender = os.environ.get("BRAAS_BLENDER") or values.get("blender")
    client_id = values.get("globus_client_id")
    if client_id is not None:
        try:
            client_id = str(uuid.UUID(str(client_id)))
        except ValueError:
            raise UsageError(f"{config_path}: globus_client_id must be a Globus client id "
                             "(a UUID)") from None
    project_root = values.get("project_root")
    if project_root is not None:
        if not isinstance(project_root, str) or not expand_user(project_root).is_dir():
            raise UsageError(f"{config_path}: project_root must name a folder")
        project_root = expand_user(project_root).resolve()
    return Settings(home=home, blender=blender, local_workers=workers,
                    globus_client_id=client_id, project_root=project_root)
