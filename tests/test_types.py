"""mypy is clean on the package (issue 13): the files and settings in pyproject.toml's [tool.mypy]."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip(f"mypy is not installed in {sys.executable}'s environment "
                    "(pip install -e '.[test]')")
    # No arguments: mypy takes `files` and the rest from pyproject.toml in ROOT. Its cache
    # stays out of the checkout (CI runs pytest with -p no:cacheprovider for the same reason).
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "/dev/null", "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"mypy found errors:\n{output}"
