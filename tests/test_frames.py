"""The frame spec grammar: what users type, what Blender accepts."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from braas_globus.worker.frames import (
    MAX_FRAME,
    FrameSpecError,
    format_frames,
    normalise,
    parse_frames,
)


@pytest.mark.parametrize(
    ("spec", "frames"),
    [
        ("7", [7]),
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-100:10", [1, 11, 21, 31, 41, 51, 61, 71, 81, 91]),  # the original's job arrays
        ("1-10:3", [1, 4, 7, 10]),
        ("5,1,3", [1, 3, 5]),
        ("1-3,2-4", [1, 2, 3, 4]),
        (" 10 - 12 ".replace(" - ", "-"), [10, 11, 12]),
        ("0", [0]),
        (f"{MAX_FRAME}", [MAX_FRAME]),
        ("3,3,3", [3]),
    ],
)
def test_valid_specs(spec, frames):
    assert parse_frames(spec) == frames


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("5-1", "reversed"),
        ("1-10:0", "step 0"),
        ("abc", "is not a frame"),
        ("", "empty"),
        ("  ", "empty"),
        ("1-", "is not a frame"),
        ("-5", "is not a frame"),
        ("1.5", "is not a frame"),
        ("1,,2", "is not a frame"),
        ("1-5:", "is not a frame"),
        (f"1-{MAX_FRAME + 1}", "Blender's last frame"),
        ("1;rm -rf /", "is not a frame"),
    ],
)
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(FrameSpecError, match=message):
        parse_frames(spec)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [("1,2,3,4", "1-4"), ("1,11,21,31", "1-31:10"), ("1,2", "1,2"), ("9,1-3", "1-3,9")],
)
def test_normalised_text(spec, canonical):
    assert normalise(spec) == canonical


frame_sets = st.sets(st.integers(min_value=0, max_value=MAX_FRAME), min_size=1, max_size=300)


@given(frame_sets)
def test_format_then_parse_gives_the_same_frames(frames):
    ordered = sorted(frames)
    assert parse_frames(format_frames(ordered)) == ordered


@given(frame_sets)
def test_normalise_is_idempotent(frames):
    once = format_frames(sorted(frames))
    assert normalise(once) == once


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(1, 400))
def test_stepped_ranges_match_python_ranges(start, length, step):
    end = start + length
    assert parse_frames(f"{start}-{end}:{step}") == list(range(start, end + 1, step))


@given(st.text(alphabet="0123456789-:, x;\n", max_size=30))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        frames = parse_frames(text)
    except FrameSpecError:
        return
    assert frames == sorted(set(frames))
    assert all(0 <= f <= MAX_FRAME for f in frames)
