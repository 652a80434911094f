"""`braas-globus container build|inspect|verify`: the Apptainer render image.

Mounted by ``cli/__init__`` as ``app.add_typer(container_app, name="container")``. Errors
are UsageError (exit 2) or RunError (exit 1), turned into one line by ``common.run``. None
of them opens the job store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .common import JsonOption, LazyService, run

if TYPE_CHECKING:
    from ..output import Output

container_app = typer.Typer(help="The Apptainer render image: Blender and the worker code.",
                            no_args_is_help=True)


def _build_args(pairs: list[str]) -> dict[str, str]:
    from ..errors import UsageError

    args: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--build-arg {pair!r}: write KEY=VALUE, e.g. BLENDER_VERSION=4.5.14")
        args[key] = value
    return args


@container_app.command("build")
def build_command(
    definition: Annotated[Path, typer.Argument(help="The recipe, container/Apptainer.def.")],
    image: Annotated[Path, typer.Argument(help="The image to write, e.g. braas-blender.sif.")],
    build_arg: Annotated[Optional[list[str]], typer.Option(help="BLENDER_VERSION=X.Y.Z, BLENDER_ARCH=auto|x86_64|aarch64, BLENDER_SOURCE=archive|pypi|debian or DEBIAN_RELEASE=bookworm|trixie; may repeat.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Build for x86_64 or aarch64 (TACC Vista): aarch64 carries Debian trixie's Blender 4.3.2 (CPU only, no OpenImageDenoise); on an x86_64 machine it runs emulated, through qemu's binfmt handler (see container/README.md).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace IMAGE if it exists.")] = False,
    fakeroot: Annotated[bool, typer.Option("--fakeroot", help="Build in a user namespace (apptainer build --fakeroot): no root needed, and %post gets every capability.")] = False,
    compression: Annotated[str, typer.Option(help="The image's squashfs compression: gzip (mounts everywhere), zstd or lz4 (each task starts faster where the kernel has them; see container/README.md).")] = "gzip",
    bind: Annotated[Optional[list[str]], typer.Option(help="SRC:DEST bound into %post and %test, e.g. a site CA bundle folder to /mnt (with APPTAINERENV_PIP_CERT=/mnt/...); may repeat.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Build the image with apptainer (checks the recipe and the Blender pin first)."""
    from ..container import build, check_labels, inspect_labels

    def command(out: Output, service: LazyService) -> None:
        args = _build_args(build_arg or [])
        built = build(definition, image, args, force=force, fakeroot=fakeroot, binds=bind or [],
                      compression=compression, arch=arch,
                      log=lambda line: out.note(line.rstrip("\n")))
        labels = inspect_labels(built)
        problems = check_labels(labels, definition)
        out.data({"image": str(built), "labels": labels, "problems": problems},
                 f"built {built}" + "".join(f"\n  problem: {p}" for p in problems))
        if problems:
            from ..errors import RunError

            raise RunError(f"{built} was built but does not verify: {problems[0]}")

    run(as_json, command)


@container_app.command("inspect")
def inspect_command(
    image: Annotated[Path, typer.Argument(help="A built image (.sif).")],
    as_json: JsonOption = False,
) -> None:
    """Print an image's labels: Blender version, architecture and sha256, braas-globus version."""
    from ..container import inspect_labels

    def command(out: Output, service: LazyService) -> None:
        labels = inspect_labels(image)
        width = max((len(k) for k in labels), default=0)
        out.data(labels, "\n".join(f"{k:<{width}}  {v}" for k, v in sorted(labels.items())))

    run(as_json, command)


@container_app.command("verify")
def verify_command(
    image: Annotated[Optional[Path], typer.Argument(help="A built image to check as well (needs apptainer).")] = None,
    recipe: Annotated[Optional[Path], typer.Option(help="The recipe (default: container/Apptainer.def of this checkout).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the recipe (anywhere) and, where apptainer exists, the image's labels."""
    from ..container import DEFAULT_RECIPE, NO_RUNTIME, check_recipe, find_runtime, verify
    from ..errors import RunError, UsageError

    def command(out: Output, service: LazyService) -> None:
        path = recipe or DEFAULT_RECIPE
        if not path.is_file():
            raise UsageError(f"no recipe at {path}: pass --recipe container/Apptainer.def "
                             "of a braas-globus checkout")
        if image is not None and not image.is_file():
            raise UsageError(f"no image at {image}")
        result: dict[str, Any] = {"recipe": str(path), "recipe_problems": check_recipe(path),
                        "image": str(image) if image else None, "image_checked": False,
                        "image_problems": [], "skipped": None}
        if image is not None:
            if find_runtime() is None:
                result["skipped"] = f"image not checked: {NO_RUNTIME}"
            else:
                result["image_problems"] = verify(image, path)
                result["image_checked"] = True
        problems = result["recipe_problems"] + result["image_problems"]
        result["ok"] = not problems
        lines = [f"recipe {path}: " + ("ok" if not result["recipe_problems"] else
                                       f"{len(result['recipe_problems'])} problems")]
        lines += [f"  {p}" for p in result["recipe_problems"]]
        if image is not None:
            if result["image_checked"]:
                lines.append(f"image {image}: " + ("ok" if not result["image_problems"] else
                                                   f"{len(result['image_problems'])} problems"))
                lines += [f"  {p}" for p in result["image_problems"]]
            else:
                lines.append(result["skipped"])
        out.data(result, "\n".join(lines))
        if problems:
            raise RunError(f"{len(problems)} problems: {problems[0]}")

    run(as_json, command)
