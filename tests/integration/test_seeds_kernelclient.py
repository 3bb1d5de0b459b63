"""The 2006 kernel client transcript (seed 000, "Using the Controller and Engines from a
Client"), run as written in Python 3 syntax against a real 2-kernel cluster.

Each seed line is a cell typed into a real IPython shell; the test checks what the seed shows
(Out values, the ``%px`` and ``%autopx`` messages). The cluster is the default profile's, so
``InteractiveCluster()`` finds it as it would for a user; it is started once for the module.
"""

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from pxcluster import CompositeError
from pxcluster.kernelclient import InteractiveCluster, NotDefined, RemoteKernel, Scatter
from pxcluster.testing import cluster_in, leftover_processes, wait_for

pytestmark = pytest.mark.timeout(120)

T = 10  # seconds any single call may take before the test fails instead of hanging


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A profile root whose default profile runs a 2-kernel cluster (started once)."""
    base = tmp_path_factory.mktemp("kernelclient") / "pxroot"
    with cluster_in(base / "profile_default", n=2) as cluster:
        yield base, cluster


@pytest.fixture
def default_profile(root, monkeypatch):
    base, cluster = root
    monkeypatch.setenv("PXCLUSTER_DIR", str(base))
    return cluster


@pytest.fixture
def shell(tmp_path, monkeypatch, default_profile):
    import sys

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(sys, "displayhook", sys.displayhook)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    yield ip
    ic = ip.user_ns.get("ic")
    if isinstance(ic, InteractiveCluster):
        ic.disconnect()
    ip.run_line_magic("unload_ext", "pxcluster")
    InteractiveShell.clear_instance()


class Session:
    """Runs cells in the shell; each returns what the cell's Out is and what it printed."""

    def __init__(self, shell):
        self.shell = shell

    def __call__(self, cell):
        with capture_output() as captured:
            result = self.shell.run_cell(cell)
        assert result.success, f"{cell!r} failed: {result.error_in_exec!r}\n{captured.stderr}"
        return result.result, captured.stdout


def test_the_seed_transcript_as_written(shell):
    s = Session(shell)
    s("from pxcluster.kernelclient import *")
    s("ic = InteractiveCluster()")
    out, printed = s("ic.start()")
    assert out is True
    assert printed.count("Connecting to kernel:") == 2
    s("ic.notify(('127.0.0.1',10104))")
    s("ic.client.timeout = 10")  # not in the seed: bounds every wait of this test

    # Executing commands on the kernels
    s("ic.execute('a = 5')")
    s("ic.execute('b = 10')")
    s("ic.execute('c = 30',0)")
    s("ic.execute('c = 40',1)")
    assert s("ic.pull('c')")[0] == [30, 40]
    s("ic[0].execute('d = 10')")
    assert s("ic.pull('d')")[0] == [10, NotDefined("d")]

    # the magics
    s("ic.activate()")
    _, printed = s("%px c = 30")
    assert printed.strip() == "Executing command on cluster"
    assert s("ic.pull('c')")[0] == [30, 30]
    _, printed = s("%autopx")
    assert printed.splitlines()[0] == "Auto Parallel Enabled"
    s("a = 40")
    s("b = 40")
    s("c = a + b")
    _, printed = s("%autopx")
    assert printed.strip() == "Auto Parallel Disabled"
    assert s("ic.pull('c')")[0] == [80, 80]
    assert "c" not in shell.user_ns  # autoparallel ran them on the kernels only

    # Moving python objects around
    assert s("ic.push('a',10)")[0] is None
    assert s("ic.pull('a')")[0] == [10, 10]
    out, _ = s("ic.pull('q')")
    assert repr(out) == "[<NotDefined: q>, <NotDefined: q>]"
    s("ic.push('a',10,0)")
    s("ic.push('a',20,1)")
    assert s("ic.pull('a')")[0] == [10, 20]
    s("ic.push('a',10,[0,1])")
    assert s("ic.pull('a',[0,1])")[0] == [10, 10]
    assert s("ic[0].push('a',10)")[0] is True
    assert s("ic[0].pull('a')")[0] == 10

    # the dictionary interface
    s("ic['a'] = 10")
    assert s("ic['a']")[0] == [10, 10]
    s("ic[0]['b'] = 20")
    s("ic[1]['b'] = 20")
    assert s("ic['b']")[0] == [20, 20]

    # Scatter
    s("ic.push('a',Scatter(range(10)))")
    assert s("ic.pull('a')")[0] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    s("ic['a'] = Scatter(range(10))")
    s("ic['a'] = Scatter(range(2))")
    assert s("ic['a']")[0] == [[0], [1]]
    s("ic['a'] = Scatter(range(2),True)")
    assert s("ic['a']")[0] == [0, 1]

    # map and parallelize
    assert s("list(map(lambda x: x*x,range(10)))")[0] == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert s("ic.map('lambda x: x*x',range(10))")[0] == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    s("ic.push('a', Scatter(range(10)))")
    _, printed = s("%px b = [x*x for x in a]")
    assert printed.strip() == "Executing command on cluster"
    assert s("ic.pull('b', flatten=True)")[0] == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert s("ic.pull('a',flatten=True)")[0] == list(range(10))
    s("f = ic.parallelize('lambda x: x*x')")
    assert s("f(range(10))")[0] == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

    # Other commands
    s("ic.reset()")
    assert s("ic.pull('a')")[0] == [NotDefined("a"), NotDefined("a")]
    s("ic.disconnect()")
    _, printed = s("ic.execute('a = 5')")  # reconnects by itself
    assert printed.count("Connecting to kernel:") == 2
    assert s("ic.pull('a')")[0] == [5, 5]


def test_kill_stops_the_kernels_for_good(tmp_path, monkeypatch):
    # Its own cluster: kill() ends the kernels that the other tests use.
    with cluster_in(tmp_path / "own", n=2) as cluster:
        pids = cluster.engine_pids
        ic = InteractiveCluster(profile_dir=cluster.paths.dir, timeout=T)
        assert ic.start() is True
        ic.execute("a = 5")
        ic.kill()
        # The kernels' processes exit; the controller keeps running.
        wait_for(lambda: not leftover_processes(pids), timeout=T, message="the kernels to exit")
        assert cluster.controller_alive()


def test_addresses_and_single_kernels(default_profile, capsys):
    cluster = default_profile
    ic = InteractiveCluster(timeout=T)
    url = cluster.client()._core.connection.url
    port = int(url.rsplit(":", 1)[1])
    assert ic.start([("127.0.0.1", port)]) is True  # the controller's address is fine
    with pytest.raises(ValueError, match="reached through"):
        ic.start([("127.0.0.1", 10105), ("127.0.0.1", 10106)])  # kernels have no address

    kernel = RemoteKernel(1, cluster=ic)
    assert kernel.push("z", Scatter([7], True)) is True
    assert kernel.pull("z") == 7
    assert kernel["nothing_here"] == NotDefined("nothing_here")
    assert kernel.map("lambda x: x + 1", [1, 2]) == [2, 3]
    with pytest.raises(CompositeError) as info:
        RemoteKernel(99, cluster=ic)
    assert "not registered" in str(info.value.elist[0])
    ic.execute("print('hi')", 1)  # what a kernel prints is shown
    assert "Out[" in capsys.readouterr().out
    ic.disconnect()
