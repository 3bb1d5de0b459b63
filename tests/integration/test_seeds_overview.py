"""Seed 002 (the IPython 0.10 tutorial's "IPython" chapter), in Python 3, on 2 real engines:
the hello-world transcript and each call of its API overview, as the overview writes it.
"""

import pytest

from pxcluster import client

T = 10  # seconds any single blocking call may take before the test fails instead of hanging


@pytest.fixture
def files(cluster2):
    return cluster2.paths.client_file


def test_hello_world_transcript(cluster2, files):
    mec = client.MultiEngineClient(files)  # MultiEngineClient(furl_or_file)
    mec.timeout = T
    assert mec.get_ids() == [0, 1]
    assert repr(mec.execute('print("Hello world!")')) == "\n".join(
        [
            "<Results List>",
            '[0] In [1]: print("Hello world!")',
            "[0] Out[1]: Hello world!",
            "",
            '[1] In [1]: print("Hello world!")',
            "[1] Out[1]: Hello world!",
        ]
    )
    mec.close()


def test_multiengine_api_overview(cluster2, files):
    mec = client.MultiEngineClient(files)
    mec.timeout = T
    # Creation and control
    assert mec.targets == "all"
    assert mec.block is True
    mec.targets = [1]
    mec.execute("who = 'one'")
    mec.targets = "all"
    assert mec.pull("who", targets=[1]) == ["one"]
    # Code execution
    assert mec.execute("a = 1", targets=[0], block=True)[0]["id"] == 0
    assert mec.map(lambda x: x * 3, range(4)) == [0, 3, 6, 9]
    # Data movement
    mec.push(dict(x=2, y="why"))
    assert mec.pull(("x", "y")) == [[2, "why"], [2, "why"]]

    def triple(v):
        return 3 * v

    mec.push_function(dict(triple=triple))
    mec.execute("t = triple(x)")
    assert mec.pull("t") == [6, 6]
    pulled = mec.pull_function("triple")
    assert [f(1) for f in pulled] == [3, 3]
    mec.scatter("part", list(range(6)))
    assert mec.pull("part") == [[0, 1, 2], [3, 4, 5]]
    assert mec.gather("part") == list(range(6))
    mec.close()


def test_task_api_overview(files):
    tc = client.TaskClient(files)
    tid = tc.run(client.MapTask(divmod, (7, 2)), block=False)
    assert isinstance(tid, str)
    tid2 = tc.run(client.StringTask("y = x ** 2", ["y"], {"x": 3}))  # (code, pull, push)
    tid3 = tc.run(client.StringTask("z = x + 1", {"x": 1}, "z"))  # either order
    tc.barrier([tid, tid2, tid3], timeout=T)
    assert tc.get_task_result(tid, block=False).r == (3, 1)
    assert tc.get_task_result(tid2).ns.y == 9
    assert tc.get_task_result(tid3).results == {"z": 2}  # IPython 0.10's name of ns
    assert tc.get_task_result(tid2, block=True, timeout=T).r == {"y": 9}
    tc.close()
