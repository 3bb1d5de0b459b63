"""Controller layer: the hub state machine and the server loop that runs it."""

from pxcluster.controller._hub import EngineRecord, Hub, Outbound
from pxcluster.controller._server import ControllerServer

__all__ = ["ControllerServer", "EngineRecord", "Hub", "Outbound"]
