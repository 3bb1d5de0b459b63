"""Many real engines on this machine, as a user starts them (issue 13: 256, the seeds' figure).

Run: ``python benchmarks/real_engines.py 256`` (slow on a small machine: every engine is a
Python process; measure when the machine is quiet). In a throw-away ``PXCLUSTER_DIR`` it
times, from outside:

1. ``pxcluster start -n N`` until it returns (every engine registered);
2. ``%px import os; pid = os.getpid()`` in an IPython shell with ``mec.activate()``, then a
   pull of ``pid`` from all N engines (N distinct processes must answer);
3. ``pxcluster stop`` until it returns, and then that no process it started is left.

Prints one JSON line of figures (``--json FILE`` also writes it). ``--relay``: the engines
behind one per-host relay (``pxcluster start --relay``); the controller's resident memory
and file descriptors are reported either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from pxcluster import MultiEngineClient


def pxcluster(*args: str, env: dict[str, str], timeout: float) -> float:
    """Run the ``pxcluster`` command; returns its wall time (raises if it fails)."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", *args], env=env, check=True,
        timeout=timeout,
    )
    return time.perf_counter() - began


def started_pids(root: Path) -> list[int]:
    """The controller, what the launcher started, and their children (engines behind a
    relay are the relay's children)."""
    record = json.loads((root / "profile_default" / "pid" / "cluster.json").read_text())
    pids = [record["controller"]["pid"], *(e["pid"] for e in record["engines"])]
    for pid in list(pids):
        with contextlib.suppress(psutil.Error):
            pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return pids


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("n", type=int, nargs="?", default=256)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--relay", action="store_true", help="engines behind one pxrelay")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pxreal-"))
    env = {**os.environ, "PXCLUSTER_DIR": str(root), "IPYTHONDIR": str(root / "ipython")}
    os.environ.update(env)
    figures: dict[str, object] = {
        "engines": args.n, "relay": args.relay, "load_before": os.getloadavg()
    }
    pids: list[int] = []
    try:
        figures["start_s"] = round(
            pxcluster("start", "-n", str(args.n), "--timeout", str(args.timeout),
                      *(["--relay"] if args.relay else []), env=env, timeout=args.timeout + 60), 2)
        pids = started_pids(root)
        controller = psutil.Process(pids[0])
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        with MultiEngineClient(timeout=120) as mec:
            shell.user_ns["mec"] = mec
            assert shell.run_cell("mec.activate()").success
            began = time.perf_counter()
            with capture_output():
                result = shell.run_cell("%px import os; pid = os.getpid()")
            figures["px_all_ms"] = round(1000 * (time.perf_counter() - began), 1)
            assert result.success, result.error_in_exec
            began = time.perf_counter()
            with capture_output():
                shell.run_cell("%px a = 1")
            figures["px_again_ms"] = round(1000 * (time.perf_counter() - began), 1)
            engine_pids = mec.pull("pid")
            figures["distinct_engine_pids"] = len(set(engine_pids))
            assert len(set(engine_pids)) == args.n
            figures["controller_rss_mb"] = round(controller.memory_info().rss / 2**20, 1)
            figures["controller_fds"] = controller.num_fds()
            shell.run_line_magic("unload_ext", "pxcluster")
        InteractiveShell.clear_instance()
    finally:
        if pids or (root / "profile_default" / "pid" / "cluster.json").exists():
            pids = pids or started_pids(root)
            figures["stop_s"] = round(pxcluster("stop", env=env, timeout=300), 2)
            time.sleep(0.5)  # not synchronisation: the check below is what counts
            left = [pid for pid in pids if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
            figures["left_running"] = len(left)
            for pid in left:
                psutil.Process(pid).kill()
    figures["load_after"] = os.getloadavg()
    print(json.dumps(figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
