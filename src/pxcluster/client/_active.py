"""Client layer: which client the IPython magics use, set by ``mec.activate()``.

Several clients may exist in one session; the magics (``pxcluster.magics``) always use the
one activated last, read from here. This module never imports IPython, so the client layer
works where IPython is not installed: when an IPython shell is running in this process,
``activate`` asks that shell's own extension manager to load the ``pxcluster`` extension
(which is how ``%load_ext pxcluster`` loads it too), and otherwise it only records the client.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pxcluster.client.multiengine import MultiEngineClient

_lock = threading.Lock()
_active: list[MultiEngineClient] = []  # at most one: the active client


def set_active(client: MultiEngineClient) -> None:
    """Make ``client`` the one the magics use."""
    with _lock:
        _active[:] = [client]


def active_client() -> MultiEngineClient | None:
    """The client the magics use (the one activated last), or None before any activate()."""
    with _lock:
        return _active[0] if _active else None


def clear_active(client: MultiEngineClient | None = None) -> None:
    """Forget the active client (only if it is ``client``, when one is given)."""
    with _lock:
        if _active and (client is None or _active[0] is client):
            _active.clear()


def load_extension_in_running_ipython() -> bool:
    """Load the ``pxcluster`` IPython extension into the shell running here, if any.

    Returns:
        True when an IPython shell is running in this process (the extension is loaded now,
        or was already); False otherwise.
    """
    ipython = sys.modules.get("IPython")  # only a running shell has imported it
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    if shell is None:
        return False
    shell.extension_manager.load_extension("pxcluster")
    return True
