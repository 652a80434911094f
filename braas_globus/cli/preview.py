"""`braas-globus preview`: look at a job's frames (a contact sheet, and a video of an
animation). Registered on the app by ``cli/__init__``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..output import Output
from .common import JobArg, JsonOption, LazyService, run


def preview(
    job: JobArg,
    no_video: Annotated[bool, typer.Option("--no-video", help="Only the contact sheet.")] = False,
    columns: Annotated[Optional[int], typer.Option(min=1, max=100, help="Thumbnails a row (default 8).")] = None,
    as_json: JsonOption = False,
) -> None:
    """A contact sheet of a job's frames, and an MP4 of an animation, in its preview/ folder."""

    def command(out: Output, service: LazyService) -> None:
        from ..preview import preview as make_preview

        result = make_preview(service.opened(), job, columns, video=not no_video)
        lines = [f"contact sheet: {result['contact_sheet']} ({len(result['rendered'])}/"
                 f"{len(result['rendered']) + len(result['missing']) + len(result['failed'])}"
                 f" frames rendered, {len(result['missing'])} missing, "
                 f"{len(result['failed'])} failed)"]
        if result["video"]:
            lines.append(f"video: {result['video']} ({len(result['rendered'])} frames at "
                         f"{result['fps']:g} fps)")
        out.data(result, "\n".join(lines))
        for note in (result["video_note"], result["warning"]):
            if note:
                out.note(str(note))

    run(as_json, command)
