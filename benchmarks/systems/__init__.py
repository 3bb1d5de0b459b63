"""Benchmarks: one adapter per compared system, all implementing ``System``."""

from __future__ import annotations

import importlib

from benchmarks.systems.base import NotAvailable, System

#: name -> (module, class, the package that must be importable)
ADAPTERS: dict[str, tuple[str, str, str]] = {
    "pxcluster": ("benchmarks.systems.px", "PxclusterSystem", "pxcluster"),
    "ipyparallel": ("benchmarks.systems.ipp", "IpyparallelSystem", "ipyparallel"),
    "dask": ("benchmarks.systems.dask_local", "DaskSystem", "distributed"),
    "relay": ("benchmarks.systems.relay_client", "RelaySystem", "zmq"),
}


def load(name: str) -> System:
    """A fresh adapter for the system called ``name``.

    Raises:
        NotAvailable: the system's package is not installed in this environment.
        KeyError: no such system.
    """
    module, cls, package = ADAPTERS[name]
    try:
        importlib.import_module(package)
    except ImportError as exc:
        raise NotAvailable(
            f"{package} is not installed in this environment ({exc}); "
            "use the .venv-bench environment (see benchmarks/README.md)"
        ) from exc
    adapter: System = getattr(importlib.import_module(module), cls)()
    return adapter


__all__ = ["ADAPTERS", "NotAvailable", "System", "load"]
