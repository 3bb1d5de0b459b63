"""Profile layer (bottom, pure): where a profile's files live, connection files, configuration."""

from pxcluster.profile._config import (
    ClusterConfig,
    LauncherConfig,
    load_config,
    load_launcher_config,
)
from pxcluster.profile._connection import (
    ENGINE_CONNECTION_ENV,
    ClientConnection,
    EngineConnection,
    client_connection_from_json,
    connection_json,
    engine_connection_from_json,
    read_client_connection,
    read_curve_keys,
    read_engine_connection,
    write_connection,
    write_curve_keys,
)
from pxcluster.profile._interfaces import default_location, resolve_ip
from pxcluster.profile._launch_env import (
    ARRAY_INDEX_ENV,
    END_TIME_ENV,
    JOB_ID_ENV,
    LAUNCHER_ENV,
    launch_info,
)
from pxcluster.profile._paths import ProfilePaths, profile_root

__all__ = [
    "ARRAY_INDEX_ENV",
    "END_TIME_ENV",
    "ENGINE_CONNECTION_ENV",
    "JOB_ID_ENV",
    "LAUNCHER_ENV",
    "ClientConnection",
    "ClusterConfig",
    "EngineConnection",
    "LauncherConfig",
    "ProfilePaths",
    "client_connection_from_json",
    "connection_json",
    "default_location",
    "engine_connection_from_json",
    "launch_info",
    "load_config",
    "load_launcher_config",
    "profile_root",
    "read_client_connection",
    "read_curve_keys",
    "read_engine_connection",
    "resolve_ip",
    "write_connection",
    "write_curve_keys",
]
