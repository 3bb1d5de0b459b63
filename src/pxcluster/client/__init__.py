"""Client layer: MultiEngineClient, PendingResult, ResultList and the errors they raise.

This is also the seeds' import: ``from pxcluster import client``; ``client.MultiEngineClient()``.
"""

from pxcluster._errors import (
    CompositeError,
    ConnectionLost,
    EngineDied,
    EngineError,
    EngineNotRegistered,
    NoClusterRunning,
    PxclusterError,
    PxclusterTimeoutError,
    RemoteError,
    SerializationError,
    TaskAborted,
    TaskError,
    TaskTimeout,
    UnknownTask,
    UnmetDependency,
)
from pxcluster.client._active import active_client
from pxcluster.client._decorators import depend, require
from pxcluster.client._results import PendingResult, ResultList
from pxcluster.client._streams import EngineOutput
from pxcluster.client._tasks import MapTask, Namespace, StringTask, TaskResult
from pxcluster.client.executors import EngineExecutor, TaskExecutor
from pxcluster.client.multiengine import (
    DirectView,
    EngineView,
    MultiEngineClient,
    ParallelFunction,
)
from pxcluster.client.task import LoadBalancedFunction, PendingTask, TaskClient

__all__ = [
    "CompositeError",
    "ConnectionLost",
    "DirectView",
    "EngineDied",
    "EngineError",
    "EngineExecutor",
    "EngineNotRegistered",
    "EngineOutput",
    "EngineView",
    "LoadBalancedFunction",
    "MapTask",
    "MultiEngineClient",
    "Namespace",
    "NoClusterRunning",
    "ParallelFunction",
    "PendingResult",
    "PendingTask",
    "PxclusterError",
    "PxclusterTimeoutError",
    "RemoteError",
    "ResultList",
    "SerializationError",
    "StringTask",
    "TaskAborted",
    "TaskClient",
    "TaskError",
    "TaskExecutor",
    "TaskResult",
    "TaskTimeout",
    "UnknownTask",
    "UnmetDependency",
    "active_client",
    "depend",
    "require",
]
