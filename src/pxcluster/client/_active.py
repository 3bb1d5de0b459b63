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
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pxcluster.client.multiengine import MultiEngineClient

_lock = threading.Lock()
_active: dict[str, MultiEngineClient] = {}  # magic suffix ("" for %px) -> its client
#: Called with a suffix when a client is activated under it (the magics add theirs).
_listeners: list[Callable[[str], None]] = []


def set_active(client: MultiEngineClient, suffix: str = "") -> None:
    """Make ``client`` the one the magics use (those named with ``suffix``: ``%px_a``)."""
    with _lock:
        _active[suffix] = client
        listeners = list(_listeners)
    for listener in listeners:
        listener(suffix)


def active_client(suffix: str = "") -> MultiEngineClient | None:
    """The client the magics (of ``suffix``) use: the one activated last, or None."""
    with _lock:
        return _active.get(suffix)


def active_suffixes() -> list[str]:
    """The suffixes clients were activated under, ``""`` (plain ``%px``) included."""
    with _lock:
        return list(_active)


def on_activate(listener: Callable[[str], None]) -> None:
    """Call ``listener(suffix)`` whenever a client is activated (once per listener)."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def remove_listener(listener: Callable[[str], None]) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def clear_active(client: MultiEngineClient | None = None) -> None:
    """Forget the active client (only where it is ``client``, when one is given)."""
    with _lock:
        for suffix in [k for k, v in _active.items() if client is None or v is client]:
            del _active[suffix]


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
