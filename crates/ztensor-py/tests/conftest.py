"""Shared fixtures of the ztensor Python test suite.

Run with the venv that has the package installed (tests/run.sh: ``.venv-py``). The interop
tests run zTensor 1.2.3 in a subprocess of another interpreter (``ZT_PYTHON``, default the
repo's ``.venv``), because both packages are called ``ztensor``.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"


def _zt123_python():
    candidates = [os.environ.get("ZT_PYTHON"), str(REPO / ".venv" / "bin" / "python")]
    for c in candidates:
        if not c or not Path(c).exists():
            continue
        probe = subprocess.run(
            [c, "-c", "import importlib.metadata as m; print(m.version('ztensor'))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "1.2.3":
            return c
    return None


@pytest.fixture(scope="session")
def zt123():
    """Runs Python code under zTensor 1.2.3; returns its stdout."""
    python = _zt123_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("no interpreter with ztensor==1.2.3 (set ZT_PYTHON)")
        pytest.skip("no interpreter with ztensor==1.2.3 (set ZT_PYTHON)")

    def run(code, *args):
        done = subprocess.run(
            [python, "-c", code, *map(str, args)], capture_output=True, text=True, cwd="/"
        )
        if done.returncode != 0:
            raise AssertionError(f"zTensor 1.2.3 failed:\n{done.stderr}")
        return done.stdout

    return run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def has_cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


sys.path.insert(0, str(Path(__file__).parent))
