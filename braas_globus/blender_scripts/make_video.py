"""Make a job's preview video: the frames given, in order, as one H.264 MP4 (Blender's FFmpeg).

    python make_video.py -- --out PREVIEW.mp4 --fps 24 --fps-base 1.0 --list FRAMES.txt

FRAMES.txt names the frames, one path a line, in the order they play: files of one folder
(a job's out/; a list file, as thousands of paths may not fit a command line). A
sequencer scene holds them as one image strip, one element per frame, and Blender renders
it with its own FFmpeg. The video is the first frame's size (rounded down to even numbers:
H.264 4:2:0 needs them). Colours stay as in the files: the view transform is Standard.
Prints ``VIDEO <frames> <width>x<height>`` when done.
"""

import argparse
import os
import sys

import bpy


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="make_video.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--fps", type=int, required=True)
    parser.add_argument("--fps-base", type=float, default=1.0)
    parser.add_argument("--list", required=True)
    return parser.parse_args(argv)


def video_output(image_settings) -> None:
    """FFmpeg output: Blender 5 chooses the media type first, older ones the format."""
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "VIDEO"
    image_settings.file_format = "FFMPEG"


def main() -> None:
    args = parse_args()
    with open(args.list, encoding="utf-8") as listed:
        frames = [os.path.abspath(line.rstrip("\n")) for line in listed if line.strip()]
    if not frames:
        raise SystemExit("error: no frames to make a video of")
    folder = os.path.dirname(frames[0])
    if any(os.path.dirname(f) != folder for f in frames):
        raise SystemExit("error: the frames are not all in one folder")
    first = bpy.data.images.load(frames[0])
    width, height = (int(n) for n in first.size)
    bpy.data.images.remove(first)
    if width < 2 or height < 2:
        raise SystemExit(f"error: {frames[0]} is {width}x{height} pixels: too small for a video")

    scene = bpy.context.scene
    render = scene.render
    render.resolution_x, render.resolution_y = width - width % 2, height - height % 2
    render.resolution_percentage = 100
    render.fps, render.fps_base = args.fps, args.fps_base
    render.use_sequencer = True
    render.use_compositing = False
    render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.frame_start, scene.frame_end = 1, len(frames)

    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.0: strips
    strip = strips.new_image(name="frames", filepath=frames[0], channel=1, frame_start=1)
    for path in frames[1:]:
        strip.elements.append(os.path.basename(path))
    strip.frame_final_duration = len(frames)

    video_output(render.image_settings)
    render.ffmpeg.format = "MPEG4"
    render.ffmpeg.codec = "H264"
    render.ffmpeg.constant_rate_factor = "HIGH"
    render.ffmpeg.ffmpeg_preset = "GOOD"
    render.ffmpeg.audio_codec = "NONE"
    render.use_file_extension = True  # the path ends with .mp4: Blender adds nothing
    render.filepath = os.path.abspath(args.out)
    bpy.ops.render.render(animation=True)
    if not os.path.isfile(render.filepath):
        raise SystemExit(f"error: Blender wrote no video at {render.filepath}")
    print(f"VIDEO {len(frames)} {render.resolution_x}x{render.resolution_y}", flush=True)


main()
