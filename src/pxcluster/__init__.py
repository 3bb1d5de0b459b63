"""pxcluster: interactive parallel computing for Python.

A controller, engines that run Python code in persistent namespaces, and clients that drive
them from scripts, IPython and notebooks. Start a cluster with ``pxcluster start -n 4``, then::

    from pxcluster import client
    mec = client.MultiEngineClient()
    mec.execute('a = 5')
"""

from typing import Any

from pxcluster._errors import (
    CompositeError,
    EngineError,
    PxclusterError,
    PxclusterTimeoutError,
    RemoteError,
)
from pxcluster.client import (
    MapTask,
    MultiEngineClient,
    PendingResult,
    ResultList,
    StringTask,
    TaskClient,
    TaskResult,
)
from pxcluster.launchers import Cluster

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
]
