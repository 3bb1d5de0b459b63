"""Controller layer: the hub state machine, the task scheduler and store, and the server loop."""

from pxcluster.controller._hub import EngineRecord, Hub
from pxcluster.controller._outbound import Outbound
from pxcluster.controller._scheduler import Scheduler, Task
from pxcluster.controller._server import ControllerServer
from pxcluster.controller._store import RecordStore, Retention, TaskRecord

__all__ = [
    "ControllerServer",
    "EngineRecord",
    "Hub",
    "Outbound",
    "RecordStore",
    "Retention",
    "Scheduler",
    "Task",
    "TaskRecord",
]
