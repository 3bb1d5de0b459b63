"""Profile layer (bottom, pure): where a profile's files live, connection files, configuration."""

from pxcluster.profile._config import ClusterConfig, load_config
from pxcluster.profile._connection import (
    ClientConnection,
    EngineConnection,
    read_client_connection,
    read_curve_keys,
    read_engine_connection,
    write_connection,
    write_curve_keys,
)
from pxcluster.profile._paths import ProfilePaths, profile_root

__all__ = [
    "ClientConnection",
    "ClusterConfig",
    "EngineConnection",
    "ProfilePaths",
    "load_config",
    "profile_root",
    "read_client_connection",
    "read_curve_keys",
    "read_engine_connection",
    "write_connection",
    "write_curve_keys",
]
