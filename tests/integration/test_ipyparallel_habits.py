"""What ipyparallel users type, on pxcluster: views, *_sync/*_async, AsyncResult's names,
decorators, sync_imports, executors, joblib, and functions that see the engine's names.

One 3-engine cluster serves the module (started once); each test uses its own clients.
"""

import concurrent.futures
import os
import re

import numpy as np
import pytest

import pxcluster
from pxcluster import CompositeError, PxclusterTimeoutError
from pxcluster.client import MapTask, UnmetDependency, depend, require
from pxcluster.testing import cluster_in

pytestmark = pytest.mark.timeout(120)

T = 10  # seconds any single blocking call may take before the test fails instead of hanging


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_in(tmp_path_factory.mktemp("habits") / "profile", n=3) as made:
        yield made


@pytest.fixture
def mec(cluster):
    client = cluster.client(timeout=T)
    client.timeout = T
    client.reset()
    return client


@pytest.fixture
def tc(cluster):
    return cluster.task_client()


def main_function(source, name):
    """A function defined in ``__main__``, as a script, IPython or a notebook defines it."""
    namespace = {"__name__": "__main__"}
    exec(source, namespace)
    func = namespace[name]
    assert func.__module__ == "__main__"
    return func


# -- views -------------------------------------------------------------------------------


def test_views_by_slice_list_and_index(mec):
    assert mec.ids == [0, 1, 2]
    pids = mec[[0, 1]].apply(os.getpid)
    assert len(pids) == 2
    assert len(set(pids)) == 2
    assert mec[1:3].targets == [1, 2]
    assert mec[::2].ids == [0, 2]
    assert mec[:].apply(os.getpid) == mec.apply(os.getpid)
    assert mec[-1].engine_id == 2
    view = mec[[0, 2]]
    view.execute("x = 7")
    assert view.pull("x") == [7, 7]
    assert view["x"] == [7, 7]
    assert mec[1].apply(lambda: "x" in globals()) is False
    view.scatter("part", range(4))
    assert view.gather("part") == [0, 1, 2, 3]


def test_unknown_target_runs_nowhere(mec):
    with pytest.raises(CompositeError) as info:
        mec.execute("ran_here = 2", targets=[1, 99])
    assert "99" in str(info.value.elist[0])
    assert mec.apply(lambda: "ran_here" in globals()) == [False, False, False]
    with pytest.raises(CompositeError):
        mec[[0, 99]]


# -- apply, map and their results ----------------------------------------------------------


def test_apply_sync_async_timeout_and_keywords(mec):
    def f(a, timeout=None, block=None):
        return (a, timeout, block)

    # Every keyword goes to the function; the call's own settings are attributes.
    assert mec[0].apply(f, 1, timeout=2, block=3) == (1, 2, 3)
    assert mec[0].apply_sync(f, 1) == (1, None, None)
    pending = mec[0].apply_async(f, 4)
    assert pending.get(timeout=T) == (4, None, None)
    assert pending.ready()
    assert pending.successful()
    assert pending.elapsed > 0
    with mec.temp_flags(block=False):
        assert isinstance(mec.apply(f, 5), pxcluster.PendingResult)
    slow = mec[0].apply_async(lambda: __import__("time").sleep(30))
    with pytest.raises(PxclusterTimeoutError, match=r"did not finish within 0\.2 s"):
        slow.result(timeout=0.2)
    assert not slow.ready()
    with pytest.raises(ValueError, match="not finished"):
        slow.successful()
    mec.interrupt(targets=0)
    assert slow.wait(T)
    assert not slow.successful()
    assert "on 1 engine(s)" in repr(mec.interrupt(targets=0, block=False))


def test_map_sync_async_and_display_outputs(mec, capsys):
    assert mec.map_sync(lambda x: x * 2, range(6)) == [0, 2, 4, 6, 8, 10]
    assert mec.map_async(lambda x: x + 1, range(3)).get(timeout=T) == [1, 2, 3]
    pending = mec.execute("print('hello from', 6 * 7)", block=False)
    pending.wait(T)
    pending.display_outputs()
    out = capsys.readouterr().out
    assert out.splitlines() == [f"[stdout:{e}] hello from 42" for e in (0, 1, 2)]
    applied = mec[[0, 2]].apply_async(lambda: print("applied") or 1)
    assert applied.get(T) == [1, 1]
    applied.display_outputs()
    assert capsys.readouterr().out.splitlines() == ["[stdout:0] applied", "[stdout:2] applied"]


# -- decorators, sync_imports ---------------------------------------------------------------


def test_remote_and_parallel_decorators(mec):
    @mec.remote()
    def where():
        return os.getpid()

    assert len(set(where())) == 3

    @mec.parallel()
    def double(part):
        return part * 2

    result = double(np.arange(9))
    assert isinstance(result, np.ndarray)  # one array, not a list of rows
    assert result.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert mec.parallel()(lambda part: [len(part)])(list(range(7))) == [3, 2, 2]
    assert mec.parallel(map=True)(lambda x: x - 1)([1, 2, 3]) == [0, 1, 2]


def test_sync_imports_binds_the_same_names_on_the_engines(mec, capsys):
    with mec.sync_imports():
        import json as js
        from math import sqrt

    assert js.dumps(1) == "1"
    assert sqrt(4) == 2.0
    assert "import json as js" in capsys.readouterr().out
    mec.execute("check = (js.dumps([1]), sqrt(9))")
    assert mec.pull("check") == [("[1]", 3.0)] * 3


def test_require_and_depend_choose_engines_for_tasks(tc, mec):
    @require("json")
    def dumped(x):
        return json.dumps(x)  # noqa: F821 - require imports it into the function's globals

    assert tc.run(MapTask(dumped, (3,)), block=True, timeout=T).r == "3"
    assert tc.map(dumped, [1, 2]) == ["1", "2"]

    mec.execute("flag = False")
    mec[2].execute("flag = True")

    def flagged():
        return __import__("__main__").flag

    @depend(flagged)
    def engine_id():
        return __import__("os").getpid()

    pid2 = mec[2].apply(os.getpid)
    ids = [tc.run(MapTask(engine_id)) for _ in range(4)]
    tc.barrier(ids, timeout=T)
    assert {tc.get_task_result(t).r for t in ids} == {pid2}

    @require("no_such_module_here")
    def impossible():
        return 1

    refused = tc.run(MapTask(impossible), block=True, timeout=T)
    assert isinstance(refused.failure, UnmetDependency)


# -- executors and joblib ------------------------------------------------------------------


def test_executors_are_concurrent_futures_executors(tc, mec):
    with tc.executor() as pool:
        assert isinstance(pool, concurrent.futures.Executor)
        future = pool.submit(pow, 2, 10)
        assert future.result(timeout=T) == 1024
        assert list(pool.map(abs, [-1, -2, 3], timeout=T)) == [1, 2, 3]
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(abs, 1)
    with mec.executor() as pool:
        pids = {pool.submit(os.getpid).result(timeout=T) for _ in range(3)}
        assert len(pids) == 3  # one call per engine in turn
        assert list(pool.map(lambda x: x * x, range(5))) == [0, 1, 4, 9, 16]


def test_joblib_backend_runs_on_the_engines(cluster):
    joblib = pytest.importorskip("joblib", reason="pip install joblib (in the test extra)")
    with cluster.task_client() as tc:
        tc.register_joblib_backend()
        with joblib.parallel_config(backend="pxcluster"):
            pids = joblib.Parallel()(joblib.delayed(os.getpid)() for _ in range(12))
            squares = joblib.Parallel(n_jobs=2)(joblib.delayed(pow)(x, 2) for x in range(10))
    assert squares == [x * x for x in range(10)]
    assert os.getpid() not in pids
    assert set(pids) <= set(cluster.client().apply(os.getpid))


# -- functions see the engine's names ------------------------------------------------------


def test_functions_from_main_see_the_engine_namespace(mec, tc):
    mec.execute("import numpy as np; offset = 100")
    zeros = main_function("def zeros():\n    return np.zeros(3).tolist()", "zeros")
    assert mec.apply(zeros) == [[0.0, 0.0, 0.0]] * 3
    shifted = main_function("def shifted(x):\n    return x + offset", "shifted")
    assert mec.map(shifted, [1, 2, 3]) == [101, 102, 103]
    assert mec.parallelize(shifted)([0]) == [100]
    assert tc.run(MapTask(shifted, (5,)), block=True, timeout=T).r == 105
    assert tc.map(shifted, range(3)) == [100, 101, 102]
    # global x; x = ... sets the engine's name
    setter = main_function("def setter(v):\n    global stored\n    stored = v", "setter")
    mec.apply(setter, 9)
    assert mec.pull("stored") == [9, 9, 9]
    # push_function: bound to the engine's namespace too
    mec.push_function({"shifted": shifted})
    mec.execute("r = shifted(1)")
    assert mec.pull("r") == [101] * 3
    # helpers defined beside the function come along
    main_ns = {"__name__": "__main__"}
    exec("def helper(x):\n    return x * offset\ndef uses(x):\n    return helper(x)", main_ns)
    assert mec[0].apply(main_ns["uses"], 2) == 200
    # a function from an importable module keeps its module's globals
    assert mec[0].apply(os.path.join, "a", "b") == "a/b"


# -- found by trying --------------------------------------------------------------------


def test_syntax_errors_show_the_users_line_only(mec):
    with pytest.raises(CompositeError) as info:
        mec[0].execute("x = (1,")
    traceback_text = info.value.elist[0].traceback
    assert "SyntaxError" in traceback_text
    assert "ast.py" not in traceback_text


def test_commands_tell_their_version_and_profile_root(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PXCLUSTER_DIR": str(tmp_path / "elsewhere")}
    for command in ("pxcluster", "pxcontroller", "pxengine"):
        done = subprocess.run(
            [bin_dir / command, "--version"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.stdout.strip() == f"{command} {pxcluster.__version__}"
        shown = subprocess.run(
            [bin_dir / command, "--help"], env=env, capture_output=True, text=True, timeout=60
        ).stdout
        assert "elsewhere" in shown
        assert "~/.pxcluster" not in shown


# -- the magics ------------------------------------------------------------------------------


@pytest.fixture
def shell(tmp_path, monkeypatch):
    import sys

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(sys, "displayhook", sys.displayhook)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    yield ip
    ip.run_line_magic("unload_ext", "pxcluster")
    InteractiveShell.clear_instance()


def run_cell(shell, cell):
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        result = shell.run_cell(cell)
    return result, captured


def test_px_output_in_engine_order_and_last_engine(shell, mec):
    shell.user_ns["mec"] = mec
    assert shell.run_cell("mec.activate()").success
    # Engine 0 answers last, yet its line comes first.
    for engine in mec.ids:
        mec[engine]["me"] = engine
    result, captured = run_cell(
        shell, "%%px\nimport time\ntime.sleep(0.05 * (3 - me))\nprint('engine', me)"
    )
    assert result.success
    assert captured.stdout.splitlines() == [f"[{e}] engine {e}" for e in (0, 1, 2)]
    result, captured = run_cell(shell, "%px --targets -1 print('last')")
    assert result.success
    assert captured.stdout.strip() == "[2] last"
    result, captured = run_cell(shell, "%px --targets 7 print('nowhere')")
    assert not result.success
    assert "Traceback" not in captured.stdout + captured.stderr
    assert "no engine [7]" in captured.stdout + captured.stderr


def test_pxresult_pxconfig_and_suffixed_magics(shell, cluster, mec):
    other = cluster.client(timeout=T)
    shell.user_ns.update(mec=mec, other=other)
    assert shell.run_cell("mec.activate()").success
    assert shell.run_cell("other.activate('_b')").success
    assert run_cell(shell, "%px x = 1")[0].success
    assert run_cell(shell, "%px_b --targets 1 x = 2")[0].success
    assert mec.pull("x") == [1, 2, 1]
    result, _ = run_cell(shell, "%pxresult --targets 0")
    assert "In [" in repr(result.result)
    result, _ = run_cell(shell, "%pxconfig_b --targets 2 --noblock")
    assert result.success
    assert other.targets == 2
    assert other.block is False
    pending = shell.run_cell("%px_b y = 3").result
    pending.get(T)
    assert mec.pull("y", targets=[2]) == [3]
    assert "autopx_b" in shell.magics_manager.magics["line"]


def test_ctrl_c_in_px_shows_one_line(shell, mec):
    import signal
    import threading

    from pxcluster.testing import wait_for

    shell.user_ns["mec"] = mec
    assert shell.run_cell("mec.activate()").success
    from IPython.utils.capture import capture_output

    with capture_output() as captured:

        def press_ctrl_c():
            try:
                wait_for(lambda: "[2] spinning" in captured.stdout, T, message="spinning")
            finally:
                os.kill(os.getpid(), signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        result = shell.run_cell("%%px\nprint('spinning', flush=True)\nwhile True: pass")
        presser.join(T)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", captured.stdout + captured.stderr)  # no colours
    assert "KeyboardInterrupt: interrupted the command on engine(s) [0, 1, 2]" in shown
    assert "Traceback" not in shown
    assert "_run.py" not in shown


def test_task_client_of_a_cluster_is_closed_by_stop(tmp_path):
    from pxcluster.client import ConnectionLost

    with cluster_in(tmp_path / "own", n=1) as own:
        tc = own.task_client()
        assert tc.run(MapTask(abs, (-1,)), block=True, timeout=T).r == 1
        tid = tc.run(MapTask(abs, (-2,)))
        tc.barrier([tid], timeout=T)
        status = tc.queue_status(verbose=True)
        assert tid in status["succeeded"]
    with pytest.raises(ConnectionLost):
        tc.run(MapTask(abs, (-3,)))


def test_client_says_at_once_that_the_controller_is_gone(tmp_path):
    import signal

    from pxcluster.client import MultiEngineClient, NoClusterRunning
    from pxcluster.testing import leftover_processes, wait_for

    with cluster_in(tmp_path / "own", n=1) as own:
        pid = own.controller_pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not leftover_processes([pid]), T, message="the controller to go")
        with pytest.raises(NoClusterRunning) as info:
            MultiEngineClient(profile_dir=own.paths.dir, timeout=60)  # fails now, not in 60 s
        assert f"pxcontroller --profile-dir {own.paths.dir}" in str(info.value)
        assert "same engines" in str(info.value)


def test_a_second_controller_in_a_live_profile_is_refused(cluster, mec):
    import subprocess
    import sys
    from pathlib import Path

    before = cluster.paths.client_file.read_text()
    done = subprocess.run(
        [Path(sys.executable).parent / "pxcontroller", "--profile-dir", str(cluster.paths.dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"a controller (pid {cluster.controller_pid}) already runs" in done.stderr
    assert cluster.paths.client_file.read_text() == before  # its files untouched
    assert mec.apply(abs, -1) == [1, 1, 1]  # the live cluster is still reachable


def test_start_and_list_with_a_profile_dir(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    pxcluster_cmd = Path(sys.executable).parent / "pxcluster"
    folder = tmp_path / "my profile"
    env = {**os.environ, "PXCLUSTER_DIR": str(tmp_path / "root")}

    def run(*args):
        return subprocess.run(
            [pxcluster_cmd, *args], env=env, capture_output=True, text=True, timeout=90
        )

    started = run("start", "-n", "1", "--profile-dir", str(folder))
    try:
        assert started.returncode == 0, started.stderr
        assert str(folder) in started.stdout
        assert "'default'" not in started.stdout
        assert f"MultiEngineClient(profile_dir={str(folder)!r})" in started.stdout
        assert f"pxcluster stop --profile-dir {folder}" in started.stdout
        listed = run("list")
        assert str(folder) in listed.stdout
    finally:
        stopped = run("stop", "--profile-dir", str(folder))
    assert stopped.returncode == 0, stopped.stderr
    assert str(folder) not in run("list").stdout


def test_a_profile_gets_a_commented_pxcluster_toml(cluster):
    import tomllib

    from pxcluster.profile import ClusterConfig, load_config

    written = cluster.paths.config_file.read_text()
    assert "# heartbeat_timeout = 3.0" in written
    assert tomllib.loads(written) == {}  # all commented out: the defaults hold
    assert load_config(cluster.paths.config_file) == ClusterConfig()


def test_queue_status_counts_running_tasks(tc):
    import time as _time

    from pxcluster.testing import wait_for

    ids = [tc.run(MapTask(_time.sleep, (60,))) for _ in range(5)]
    try:
        def three_running():
            status = tc.queue_status()
            return status if status["running"] == 3 else None

        status = wait_for(three_running, T, message="one task running on each of 3 engines")
        assert status["assigned"] + status["queued"] == 5
        assert status["assigned"] >= status["running"]
    finally:
        for task_id in ids:
            tc.abort(task_id)
        tc.barrier(ids, timeout=T)
    assert tc.queue_status()["running"] == 0


def test_wrapped_main_functions_see_the_engine_namespace_too(mec, tc):
    import functools

    mec.execute("base = 10")
    add = main_function("def add(x, y=0):\n    return x + y + base", "add")
    assert mec[0].apply(functools.partial(add, 1), y=2) == 13
    dumped = require("json")(main_function("def d(x):\n    return json.dumps(x + base)", "d"))
    assert tc.map(dumped, [1, 2]) == ["11", "12"]
    remote_add = mec.remote()(add)
    assert remote_add(5) == [15, 15, 15]


def test_calls_after_the_controller_died_say_how_to_take_over(tmp_path):
    import signal

    from pxcluster.client import ConnectionLost
    from pxcluster.testing import leftover_processes, wait_for

    with cluster_in(tmp_path / "own", n=1) as own:
        mec = own.client(timeout=T)
        pid = own.controller_pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not leftover_processes([pid]), T, message="the controller to go")
        # until the client has seen the link drop, a call may still reach the live engine
        # directly and succeed; from then on, every call is refused at once
        wait_for(lambda: not mec._core.link_up, T, message="the client to see the drop")
        with pytest.raises(ConnectionLost) as info:
            mec.execute("1", timeout=T)
        assert f"pxcontroller --profile-dir {own.paths.dir}" in str(info.value)


def test_progress_is_one_line_when_stderr_is_not_a_terminal(mec, tc, capsys):
    assert mec.map(abs, range(-20, 0), progress=True) == list(range(20, 0, -1))
    tc.barrier([tc.run(MapTask(abs, (-1,))) for _ in range(3)], timeout=T, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err  # no bar redrawn into a log
    lines = err.splitlines()
    assert lines[0].startswith("map: 20/20 items in ")
    assert lines[1].startswith("tasks: 3/3 tasks in ")
