"""Launchers layer: the keeper process's entry point (``python -m pxcluster.launchers._keeperd``).

A module of its own, which the package never imports, so that running it as ``__main__``
does not load ``_watcher`` twice (see ``_watcher.py`` for what the process does).
"""

from pxcluster.launchers._watcher import main

if __name__ == "__main__":
    raise SystemExit(main())
