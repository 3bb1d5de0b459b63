"""Benchmarks: a fresh process that starts a cluster, reports ready, and stops it on request.

``lifecycle.py`` runs it and times it from the outside (whole-process wall time: the
interpreter and the library's imports count). It speaks JSON lines on stdout:

1. ``{"ready": <engines>}`` once the cluster is started, connected and has every engine;
2. ``{"execute": [seconds, ...]}`` when asked to time ``execute('a=1')`` on all engines;
3. then it waits for ``stop`` on stdin, stops the cluster and exits.

``{"error": "..."}`` replaces any of these when something fails; the cluster is still
stopped.

Run: ``python -m benchmarks.startstop SYSTEM N [EXECUTE_REPEATS [WARMUP]]``.
"""

from __future__ import annotations

import json
import sys
import time


def say(**message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    name, n = argv[0], int(argv[1])
    repeats = int(argv[2]) if len(argv) > 2 else 0
    warmup = int(argv[3]) if len(argv) > 3 else 3
    from benchmarks.systems import load

    system = load(name)
    code = 0
    try:
        system.start(n)
        count = system.engine_count()
        if count != n:
            raise RuntimeError(f"{count} engines connected, not {n}")
        say(ready=count)
        if repeats:
            for _ in range(warmup):
                system.execute_all("a=1")
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                system.execute_all("a=1")
                samples.append(time.perf_counter() - t0)
            say(execute=samples)
        sys.stdin.readline()
    except Exception as exc:
        say(error=f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        system.stop()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
