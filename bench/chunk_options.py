"""The render chunk the engine and image benchmarks time: its command-line options, and the
scene they make for it (a real .blend, as the tests make them)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_chunk_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--samples", type=int, default=4)


def build_chunk_scene(folder: Path, args: argparse.Namespace) -> Path:
    from tests.conftest import build_scene

    return build_scene(folder, "--frames", str(args.frames), "--width", str(args.width),
                       "--height", str(args.height), "--samples", str(args.samples))
