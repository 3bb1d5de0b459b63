"""pxcluster: interactive parallel computing for Python.

A controller, engines that run Python code in persistent namespaces, and clients that drive
them from scripts, IPython and notebooks. Start a cluster with ``pxcluster start -n 4``, then::

    from pxcluster import client
    mec = client.MultiEngineClient()
    mec.execute('a = 5')
"""

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
