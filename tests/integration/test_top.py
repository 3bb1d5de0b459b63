"""`pxcluster top` in a real terminal (tmux): send keys, read the pane, as a user's eyes would."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from pxcluster import CompositeError
from pxcluster.testing import cluster_in, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tmux(tmp_path):
    """Runs tmux commands on a server of this test's own; kills that server afterwards."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: run tests/services/install.sh (installs tmux)")
    socket = str(tmp_path / "tmux.sock")

    def run(*args):
        return subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True,
                              timeout=30, check=False)

    yield run
    run("kill-server")


def test_top_shows_engines_errors_and_deaths_and_quits_on_q(tmp_path, tmux):
    folder = tmp_path / "pxroot" / "profile_top"
    with cluster_in(folder, n=2, heartbeat_timeout=2.0) as cluster:
        command = (f"{sys.executable} -m pxcluster.cli.cluster top --profile-dir {folder} "
                   "--period 0.3")
        started = tmux("new-session", "-d", "-s", "top", "-x", "110", "-y", "40",
                       "-e", "LANG=C.UTF-8", command)
        assert started.returncode == 0, started.stderr

        def pane():
            return tmux("capture-pane", "-p", "-t", "top").stdout

        def shows(*texts):
            return lambda: all(t in pane() for t in texts)

        pids = [str(p) for p in cluster.engine_pids]
        wait_for(shows("ENGINE", "2 live", *pids), timeout=30, message="engines on screen")

        mec = cluster.client()
        with pytest.raises(CompositeError):
            mec.execute("1/0", targets=[1])
        wait_for(shows("RECENT ERRORS", "engine 1 EXECUTE", "ZeroDivisionError"), timeout=30,
                 message="the error on screen")
        assert "errors: 1" in pane()

        os.kill(cluster.engine_pids[0], signal.SIGKILL)
        wait_for(shows("1 live", "DEAD"), timeout=30, message="the dead engine on screen")
        dead = next(line for line in pane().splitlines() if "DEAD" in line)
        assert pids[0] in dead

        tmux("send-keys", "-t", "top", "q")
        wait_for(lambda: tmux("has-session", "-t", "top").returncode != 0, timeout=20,
                 message="top to quit on q")
        mec.close()


def test_top_once_prints_one_screen(tmp_path):
    folder = tmp_path / "pxroot" / "profile_once"
    with cluster_in(folder, n=1) as cluster:
        shown = subprocess.run(
            [sys.executable, "-m", "pxcluster.cli.cluster", "top", "--once", "--profile-dir",
             str(folder)], capture_output=True, text=True, timeout=60, check=False)
        assert shown.returncode == 0, shown.stderr
        assert "engines: 1 live (0 busy, 1 idle), 0 dead" in shown.stdout
        assert str(cluster.engine_pids[0]) in shown.stdout


def test_top_without_a_cluster_says_so(tmp_path):
    shown = subprocess.run(
        [sys.executable, "-m", "pxcluster.cli.cluster", "top", "--once", "--profile-dir",
         str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 1
    assert "is a cluster running? Start one with `pxcluster start" in shown.stderr


def test_top_has_help():
    shown = subprocess.run([sys.executable, "-m", "pxcluster.cli.cluster", "top", "--help"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0
    assert "Press q to quit" in shown.stdout
    assert "--once" in shown.stdout
