"""Client layer: MultiEngineClient, PendingResult, ResultList and the errors they raise.

This is also the seeds' import: ``from pxcluster import client``; ``client.MultiEngineClient()``.
"""

from pxcluster._errors import (
    CompositeError,
    EngineDied,
    EngineError,
    EngineNotRegistered,
    NoClusterRunning,
    PxclusterError,
    PxclusterTimeoutError,
    RemoteError,
    SerializationError,
)
from pxcluster.client._active import active_client
from pxcluster.client._results import PendingResult, ResultList
from pxcluster.client._streams import EngineOutput
from pxcluster.client.multiengine import EngineView, MultiEngineClient, ParallelFunction

__all__ = [
    "CompositeError",
    "EngineDied",
    "EngineError",
    "EngineNotRegistered",
    "EngineOutput",
    "EngineView",
    "MultiEngineClient",
    "NoClusterRunning",
    "ParallelFunction",
    "PendingResult",
    "PxclusterError",
    "PxclusterTimeoutError",
    "RemoteError",
    "ResultList",
    "SerializationError",
    "active_client",
]
