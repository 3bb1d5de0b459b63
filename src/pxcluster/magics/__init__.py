"""Magics layer: the IPython extension (``%px``, ``%%px``, ``%autopx``, ``%result``,
``%pxresult``, ``%pxconfig``, and their suffixed forms).

The only package that imports IPython. Loaded by ``%load_ext pxcluster`` or by
``mec.activate()`` in a running IPython or Jupyter kernel; it adds the magics and the tab
completion of the engines' names, and shows remote errors without the client's internals.
What it added is found again through the shell itself (its magics registry and its list of
matchers), so loading twice adds nothing and unloading removes exactly that.
"""

from __future__ import annotations

from typing import Any

from pxcluster.client._active import active_suffixes, on_activate, remove_listener
from pxcluster.magics import _tracebacks
from pxcluster.magics._completion import RemoteNameMatcher
from pxcluster.magics._magics import ParallelMagics

__all__ = ["ParallelMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Add the parallel magics and remote-name completion to the shell ``ipython``."""
    if isinstance(ipython.magics_manager.registry.get(ParallelMagics.__name__), ParallelMagics):
        return
    magics = ParallelMagics(ipython)
    ipython.register_magics(magics)
    ipython.Completer.custom_matchers.append(RemoteNameMatcher(ipython))
    _tracebacks.install(ipython)
    # Clients activated with a suffix (mec.activate('_a')) get magics of their own.
    for suffix in active_suffixes():
        magics.add_suffix(suffix)
    on_activate(magics.add_suffix)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what ``load_ipython_extension`` added (``%unload_ext pxcluster``)."""
    magics = ipython.magics_manager.registry.pop(ParallelMagics.__name__, None)
    if isinstance(magics, ParallelMagics):
        remove_listener(magics.add_suffix)
        magics.autopx_mode.disable()
        for each in magics.suffixed.values():
            each.autopx_mode.disable()
        for kind, names in magics.magics.items():
            for name in names:
                ipython.magics_manager.magics[kind].pop(name, None)
        for kind, names in magics.suffixed_names().items():
            for name in names:
                ipython.magics_manager.magics[kind].pop(name, None)
    matchers = ipython.Completer.custom_matchers
    matchers[:] = [m for m in matchers if not isinstance(m, RemoteNameMatcher)]
    _tracebacks.uninstall(ipython)
