"""Testing layer: a simulator process (``pxcluster.testing._simulator``) as a context."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def simulated_engines(
    engine_file: Path, n: int, *args: str, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """One simulator process of ``n`` engines for the controller of ``engine_file``
    (``args``: more of its options; ``popen``: ``subprocess.Popen``'s). On exit it is
    waited for (its engines leave when their controller stops: stop the cluster first),
    killed if still there after 30 s, and its pipes are closed."""
    command = [sys.executable, "-m", "pxcluster.testing._simulator"]
    command += ["--file", str(engine_file), "-n", str(n), *args]
    sim = subprocess.Popen(command, **popen)
    try:
        yield sim
    finally:
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
        for pipe in (sim.stdin, sim.stdout, sim.stderr):
            if pipe is not None:
                pipe.close()
