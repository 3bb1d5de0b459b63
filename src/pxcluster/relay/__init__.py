"""Relay layer: ``pxrelay``, one process per host between its engines and the controller.

Beside the controller, engine and client layers: it imports only wire, serialize, profile
and transport.
"""

from pxcluster.relay._relay import LocalEngine, Relay, RelayAddresses, RelayStats

__all__ = ["LocalEngine", "Relay", "RelayAddresses", "RelayStats"]
