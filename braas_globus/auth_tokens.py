"""The Globus token file: owner-only, written atomically, refused when others can read it.

globus-sdk's own JSON storage sets a umask only when it creates the file; an existing
file keeps its mode and nothing is checked on read. This storage checks on every read
and write, in the SDK's JSON format (one section per client id).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import globus_sdk
from globus_sdk.token_storage import TokenStorage, TokenStorageData

from .errors import RunError

LOGIN = "run `braas-globus login`"


def _check_private(info: os.stat_result, path: Path) -> None:
    """Refuse a token file (or its folder) that belongs to someone else or others can open."""
    if os.name == "nt":
        return
    if info.st_uid != os.getuid():
        raise RunError(f"{path} belongs to another user (uid {info.st_uid}); braas-globus will "
                       f"not use Globus tokens from it: remove it, then {LOGIN}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise RunError(f"{path} can be read or changed by other users (mode {mode:04o}), so your "
                       "Globus tokens may have been copied: run `braas-globus logout` to revoke "
                       f"them, then {LOGIN}")


def make_private(path: Path) -> bool:
    """Set mode 0600 on a file of ours that others could open; True if that was needed."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if os.name == "nt" or stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        return False
    if not stat.S_IMODE(info.st_mode) & 0o077:
        return False
    os.chmod(path, 0o600)
    return True


def _private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "nt":
        if folder.stat().st_uid == os.getuid():
            os.chmod(folder, 0o700)
        _check_private(folder.stat(), folder)


class PrivateTokenFile(TokenStorage):
    """Globus tokens in one JSON file that only its owner can read (see the module's notes)."""

    format_version = "2.0"

    def __init__(self, path: Path, *, namespace: str) -> None:
        super().__init__(namespace=namespace)
        self.path = path

    # TokenStorage's interface
    def get_token_data_by_resource_server(self) -> dict[str, TokenStorageData]:
        stored = self._read()["data"].get(self.namespace, {})
        return {server: TokenStorageData.from_dict(data) for server, data in stored.items()}

    def store_token_data_by_resource_server(
        self, token_data_by_resource_server: Mapping[str, TokenStorageData]
    ) -> None:
        content = self._read()
        mine = content["data"].setdefault(self.namespace, {})
        for server, token_data in token_data_by_resource_server.items():
            mine[server] = token_data.to_dict()
        self._write(content)

    def remove_token_data(self, resource_server: str) -> bool:
        content = self._read()
        removed = content["data"].get(self.namespace, {}).pop(resource_server, None) is not None
        if removed:
            self._write(content)
        return removed

    # ours
    def clear(self) -> None:
        """Forget every token of this namespace; the file goes when nothing else is in it."""
        content = self._read()
        content["data"].pop(self.namespace, None)
        if content["data"]:
            self._write(content)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {"data": {}, "format_version": self.format_version,
                    "globus-sdk.version": globus_sdk.__version__}
        except OSError as err:  # ELOOP: a symbolic link
            raise RunError(f"{self.path}: cannot open the token file ({err.strerror}); "
                           f"remove it, then {LOGIN}") from None
        with os.fdopen(fd, encoding="utf-8") as file:
            _check_private(os.fstat(file.fileno()), self.path)
            try:
                content = json.load(file)
            except ValueError:
                content = None
        if not (isinstance(content, dict) and isinstance(content.get("data"), dict)):
            raise RunError(f"{self.path} is not a token file that braas-globus wrote: "
                           f"remove it, then {LOGIN}")
        return content

    def _write(self, content: dict[str, Any]) -> None:
        content["format_version"] = self.format_version
        content["globus-sdk.version"] = globus_sdk.__version__
        _private_folder(self.path.parent)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:  # mkstemp makes it 0600
                json.dump(content, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _check_private(os.stat(self.path), self.path)
