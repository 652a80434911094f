"""The frame spec grammar: ``1-100:10,120,200-210`` and friends.

Stdlib only: the worker entry point parses the same specs the client writes.

    spec  := item ("," item)*
    item  := N | A "-" B | A "-" B ":" STEP

Frames are whole numbers from 0 to MAX_FRAME (Blender's own limit). A spec is
normalised to its sorted, deduplicated frames, written back in the shortest form
this module produces (``format_frames``).
"""

from __future__ import annotations

import re

# Blender's MAXFRAME: the largest frame number a scene accepts.
MAX_FRAME = 1048574

_ITEM = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


class FrameSpecError(ValueError):
    """A frame spec that does not follow the grammar."""


def parse_frames(spec: str) -> list[int]:
    """Return the sorted, unique frames of ``spec``; raise FrameSpecError if malformed."""
    if not spec or not spec.strip():
        raise FrameSpecError("the frame spec is empty")
    frames: set[int] = set()
    for raw in spec.split(","):
        item = raw.strip()
        match = _ITEM.match(item)
        if not match:
            raise FrameSpecError(
                f"{item!r} is not a frame, a range A-B, or a stepped range A-B:STEP"
            )
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        step = int(match.group(3)) if match.group(3) is not None else 1
        if end < start:
            raise FrameSpecError(f"{item!r} is a reversed range: write {end}-{start}")
        if step == 0:
            raise FrameSpecError(f"{item!r} has step 0: the step must be 1 or more")
        if end > MAX_FRAME:
            raise FrameSpecError(f"{item!r} goes past frame {MAX_FRAME}, Blender's last frame")
        frames.update(range(start, end + 1, step))
    return sorted(frames)


def format_frames(frames: list[int] | tuple[int, ...]) -> str:
    """Write sorted unique frames as a spec: runs of three or more with one step compress."""
    parts: list[str] = []
    i = 0
    n = len(frames)
    while i < n:
        start = frames[i]
        if i + 2 < n:
            step = frames[i + 1] - start
            j = i + 1
            while j + 1 < n and frames[j + 1] - frames[j] == step:
                j += 1
            if j - i >= 2:
                end = frames[j]
                parts.append(f"{start}-{end}" if step == 1 else f"{start}-{end}:{step}")
                i = j + 1
                continue
        parts.append(str(start))
        i += 1
    return ",".join(parts)


def normalise(spec: str) -> str:
    """The canonical text of ``spec``."""
    return format_frames(parse_frames(spec))
