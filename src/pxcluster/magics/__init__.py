"""Magics layer: the IPython extension (``%px``, ``%%px``, ``%autopx``, ``%result``).

The only package that imports IPython. Loaded by ``%load_ext pxcluster`` or by
``mec.activate()`` in a running IPython or Jupyter kernel; it adds the magics and the tab
completion of the engines' names, and shows remote errors without the client's internals.
"""

from __future__ import annotations

from typing import Any

from pxcluster.magics import _tracebacks
from pxcluster.magics._completion import RemoteNameMatcher
from pxcluster.magics._magics import ParallelMagics

__all__ = ["ParallelMagics", "load_ipython_extension", "unload_ipython_extension"]

# What the extension added to each shell (by id), so that unloading removes exactly that.
_installed: dict[int, tuple[ParallelMagics, Any]] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Add the parallel magics and remote-name completion to the shell ``ipython``."""
    if id(ipython) in _installed:
        return
    magics = ParallelMagics(ipython)
    ipython.register_magics(magics)
    matcher = RemoteNameMatcher(ipython)
    ipython.Completer.custom_matchers.append(matcher)
    _tracebacks.install(ipython)
    _installed[id(ipython)] = (magics, matcher)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what ``load_ipython_extension`` added (``%unload_ext pxcluster``)."""
    magics, matcher = _installed.pop(id(ipython), (None, None))
    if magics is None:
        return
    magics.autopx_mode.disable()
    _tracebacks.uninstall(ipython)
    for kind, names in magics.magics.items():
        for name in names:
            ipython.magics_manager.magics[kind].pop(name, None)
    if matcher in ipython.Completer.custom_matchers:
        ipython.Completer.custom_matchers.remove(matcher)
