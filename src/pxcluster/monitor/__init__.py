"""Monitor layer (above client): the data source of the dashboard and ``pxcluster top``."""

from pxcluster.monitor._address import (
    DashboardAddress,
    dashboard_file,
    dashboard_token,
    dashboard_url,
    running_dashboard,
)
from pxcluster.monitor._snapshot import (
    ClientRow,
    ClusterSnapshot,
    EngineRow,
    ErrorEvent,
    TaskEvent,
)
from pxcluster.monitor._source import MonitorSource
from pxcluster.monitor._text import render_text

__all__ = [
    "ClientRow",
    "ClusterSnapshot",
    "DashboardAddress",
    "EngineRow",
    "ErrorEvent",
    "MonitorSource",
    "TaskEvent",
    "dashboard_file",
    "dashboard_token",
    "dashboard_url",
    "render_text",
    "running_dashboard",
]
