"""The checksum table ``container/blender-sha256.txt``: one pinned sha256 per Blender
release, architecture and source, which the recipe's download is checked against.

Each line is ``VERSION ARCH SOURCE SHA256 [URL]``; ``#`` starts a comment. For the debian
source the last field is the Debian package version (``4.3.2+dfsg-2``), not a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .container_image import ARCHES, BLENDER_RELEASE, SOURCES

_SHA256 = re.compile(r"[0-9a-f]{64}")
_DEBIAN_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+[+~][A-Za-z0-9.+~-]+")


@dataclass(frozen=True)
class ChecksumRow:
    version: str
    arch: str
    source: str
    sha256: str
    url: str | None
    line: int

    @property
    def pinned(self) -> bool:
        """True when sha256 is a real value, not a placeholder."""
        return bool(_SHA256.fullmatch(self.sha256))


def read_checksums(path: Path) -> tuple[list[ChecksumRow], list[str]]:
    """The rows of a checksum table and what is wrong with it (placeholders included)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        return [], [f"checksum table {path}: cannot read it ({err})"]
    rows: list[ChecksumRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str, str], int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"{Path(path).name} line {number}"
        if len(fields) not in (4, 5):
            problems.append(f"{where}: write VERSION ARCH SOURCE SHA256 [URL], not {line!r}")
            continue
        row = ChecksumRow(fields[0], fields[1], fields[2], fields[3],
                          url=fields[4] if len(fields) == 5 else None, line=number)
        if not BLENDER_RELEASE.fullmatch(row.version):
            problems.append(f"{where}: {row.version!r} is not a Blender release X.Y.Z")
        if row.arch not in ARCHES:
            problems.append(f"{where}: architecture {row.arch!r} is not one of {', '.join(ARCHES)}")
        if row.source not in SOURCES:
            problems.append(f"{where}: source {row.source!r} is not one of {', '.join(SOURCES)}")
        if not row.pinned:
            problems.append(f"{where}: fill in the sha256 of Blender {row.version} for {row.arch} "
                            f"from {row.source} ({row.sha256!r} is a placeholder, not 64 "
                            "lowercase hex digits)")
        if row.source == "debian":
            if row.url is None or not _DEBIAN_VERSION.fullmatch(row.url) \
                    or not row.url.startswith(row.version):
                problems.append(f"{where}: a debian row ends with the package version of "
                                f"Blender {row.version} (e.g. {row.version}+dfsg-2), not "
                                f"{row.url!r}")
        elif row.url is not None and not row.url.startswith(("https://", "file://")):
            problems.append(f"{where}: the download URL must be https://, not {row.url!r}")
        key = (row.version, row.arch, row.source)
        if key in seen:
            problems.append(f"{where}: a second row for Blender {row.version} on {row.arch} "
                            f"from {row.source} (the first is line {seen[key]})")
        seen[key] = number
        rows.append(row)
    return rows, problems


def pinned_row(rows: Iterable[ChecksumRow], version: str, arch: str,
               source: str = "archive") -> ChecksumRow | None:
    return next((r for r in rows if (r.version, r.arch, r.source) == (version, arch, source)),
                None)

