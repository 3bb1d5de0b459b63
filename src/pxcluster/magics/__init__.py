"""Magics layer: the IPython extension (``%px``, ``%%px``, ``%autopx``, ``%result``).

The only package that imports IPython. Loaded by ``%load_ext pxcluster`` or by
``mec.activate()`` in a running IPython or Jupyter kernel; it adds the magics and the tab
completion of the engines' names, and shows remote errors without the client's internals.
What it added is found again through the shell itself (its magics registry and its list of
matchers), so loading twice adds nothing and unloading removes exactly that.
"""

from __future__ import annotations

from typing import Any

from pxcluster.magics import _tracebacks
from pxcluster.magics._completion import RemoteNameMatcher
from pxcluster.magics._magics import ParallelMagics

__all__ = ["ParallelMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Add the parallel magics and remote-name completion to the shell ``ipython``."""
    if isinstance(ipython.magics_manager.registry.get(ParallelMagics.__name__), ParallelMagics):
        return
    ipython.register_magics(ParallelMagics(ipython))
    ipython.Completer.custom_matchers.append(RemoteNameMatcher(ipython))
    _tracebacks.install(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what ``load_ipython_extension`` added (``%unload_ext pxcluster``)."""
    magics = ipython.magics_manager.registry.pop(ParallelMagics.__name__, None)
    if isinstance(magics, ParallelMagics):
        magics.autopx_mode.disable()
        for kind, names in magics.magics.items():
            for name in names:
                ipython.magics_manager.magics[kind].pop(name, None)
    matchers = ipython.Completer.custom_matchers
    matchers[:] = [m for m in matchers if not isinstance(m, RemoteNameMatcher)]
    _tracebacks.uninstall(ipython)
