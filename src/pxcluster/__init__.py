"""pxcluster: interactive parallel computing for Python.

A controller, engines that run Python code in persistent namespaces, and clients that drive
them from scripts, IPython and notebooks. Start a cluster with ``pxcluster start -n 4``, then::

    from pxcluster import client
    mec = client.MultiEngineClient()
    mec.execute('a = 5')
"""

import importlib
from typing import TYPE_CHECKING, Any

from pxcluster._errors import (
    CompositeError,
    EngineError,
    PxclusterError,
    PxclusterTimeoutError,
    RemoteError,
)

if TYPE_CHECKING:
    from pxcluster.client import (
        MapTask,
        MultiEngineClient,
        PendingResult,
        ResultList,
        StringTask,
        TaskClient,
        TaskResult,
    )
    from pxcluster.client._joblib import register_joblib_backend
    from pxcluster.launchers import Cluster

# Imported on first use, not with the package: an engine process imports pxcluster too, and
# needs neither the client nor the launchers (a few MB and tens of ms at every engine start).
_LAZY = {
    "Cluster": "pxcluster.launchers",
    "MapTask": "pxcluster.client",
    "MultiEngineClient": "pxcluster.client",
    "PendingResult": "pxcluster.client",
    "ResultList": "pxcluster.client",
    "StringTask": "pxcluster.client",
    "TaskClient": "pxcluster.client",
    "TaskResult": "pxcluster.client",
    "register_joblib_backend": "pxcluster.client._joblib",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pxcluster' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pxcluster``: the parallel magics. IPython is imported only now."""
    from pxcluster.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext pxcluster``."""
    from pxcluster.magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "Cluster",
    "CompositeError",
    "EngineError",
    "MapTask",
    "MultiEngineClient",
    "PendingResult",
    "PxclusterError",
    "PxclusterTimeoutError",
    "RemoteError",
    "ResultList",
    "StringTask",
    "TaskClient",
    "TaskResult",
    "__version__",
    "register_joblib_backend",
]
