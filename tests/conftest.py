"""Fixtures: real clusters in temporary profile folders; nothing is mocked."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pxcluster import Cluster, MultiEngineClient
from pxcluster.controller import Hub
from pxcluster.testing import cluster_in

pytest_plugins = [
    "services.mpi",
    "services.slurm",
    "services.sge",
    "services.netns",
    "services.sshd",
    "services.jupyter",
]


@pytest.fixture(autouse=True)
def _isolated_profile_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's ~/.pxcluster."""
    monkeypatch.setenv("PXCLUSTER_DIR", str(tmp_path / "pxroot"))


@pytest.fixture
def cluster4(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh controller with 4 engines, as `pxcluster start -n 4` makes."""
    with cluster_in(tmp_path / "profile", n=4) as cluster:
        yield cluster


@pytest.fixture
def cluster2(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh controller with 2 engines and a short heartbeat timeout (2 s)."""
    with cluster_in(tmp_path / "profile", n=2, heartbeat_timeout=2.0) as cluster:
        yield cluster


@pytest.fixture
def mec(cluster4: Cluster) -> MultiEngineClient:
    """A blocking MultiEngineClient on the 4-engine cluster."""
    return cluster4.client()


def pytest_report_header() -> str:
    return f"pxcluster tests: {os.cpu_count()} cores"


@pytest.fixture
def make_hub() -> Iterator[Callable[..., Hub]]:
    """Builds hubs for state-machine tests and closes their record stores afterwards."""
    hubs: list[Hub] = []

    def make(**options: Any) -> Hub:
        hub = Hub(**options)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()
