"""The MultiEngine transcripts of the IPython1 documents (seeds 000, 001, 004), in Python 3.

Each test replays one section of a transcript on a fresh 4-engine cluster, so the per-engine
``In [N]`` counters start at 1 and the printed layouts can be compared exactly. Where the
seeds sleep for seconds the remote code sleeps for a fraction of one; ``px print c`` lines
become ``mec.execute('print(c)')``. The magics (%px, %autopx, %result) and the Task
interface are covered elsewhere.
"""

import asyncio
import sys
import textwrap

import pytest

from pxcluster import client
from pxcluster.testing import leftover_processes, wait_for

T = 10  # seconds any single blocking call may take before the test fails instead of hanging


def results_list(*entries):
    """The expected ``<Results List>`` text: entries are (engine, number, input[, output])."""
    lines = ["<Results List>"]
    for engine, number, code, *out in entries:
        lines.append(f"[{engine}] In [{number}]: {code}")
        if out:
            lines += [f"[{engine}] Out[{number}]: {out[0]}", ""]
    return "\n".join(lines).rstrip("\n")


def composite_text(method, ids, summary):
    lines = [f"one or more exceptions from call to method: {method}"]
    lines += [f"[{i}:{method}]: {summary}" for i in ids]
    return "\n".join(lines)


# -- seed 001: the first thing a new user runs ---------------------------------------------


def test_hello_world_on_four_engines(mec):
    assert isinstance(mec, client.MultiEngineClient)
    assert mec.get_ids(timeout=T) == [0, 1, 2, 3]

    result = mec.execute('print("Hello World")', timeout=T)

    assert isinstance(result, client.ResultList)
    assert repr(result) == results_list(
        *[(i, 1, 'print("Hello World")', "Hello World") for i in range(4)]
    )


# -- seed 004: running Python commands -----------------------------------------------------


def test_blocking_execute_layouts_and_result_dicts(mec):
    assert repr(mec.execute("a=5", timeout=T)) == results_list(*[(i, 1, "a=5") for i in range(4)])
    assert repr(mec.execute("b=10", timeout=T)) == results_list(*[(i, 2, "b=10") for i in range(4)])
    assert repr(mec.execute("c=a+b", targets=[0, 2], timeout=T)) == results_list(
        (0, 3, "c=a+b"), (2, 3, "c=a+b")
    )
    assert repr(mec.execute("c=a-b", targets=[1, 3], timeout=T)) == results_list(
        (1, 3, "c=a-b"), (3, 3, "c=a-b")
    )
    # The namespaces persist: each engine prints its own c.
    assert repr(mec.execute("print(c)", timeout=T)) == results_list(
        (0, 4, "print(c)", "15"),
        (1, 4, "print(c)", "-5"),
        (2, 4, "print(c)", "15"),
        (3, 4, "print(c)", "-5"),
    )

    result_dict = mec.execute("d=10; print(d)", timeout=T)

    seen = []
    for r in result_dict:
        seen.append({key: r[key] for key in ("id", "number", "input", "stdout")})
    assert seen == [
        {
            "id": i,
            "number": 5,
            "input": {"translated": "d=10; print(d)", "raw": "d=10; print(d)"},
            "stdout": "10\n",
        }
        for i in range(4)
    ]


def test_non_blocking_execute_poll_and_barrier(mec):
    assert repr(mec.execute("import time", timeout=T)) == results_list(
        *[(i, 1, "import time") for i in range(4)]
    )

    pr = mec.execute("time.sleep(0.2)", block=False)
    assert isinstance(pr, client.PendingResult)
    assert repr(pr.get_result(timeout=T)) == results_list(
        *[(i, 2, "time.sleep(0.2)") for i in range(4)]
    )

    pr = mec.execute("time.sleep(0.5)", block=False)
    assert pr.get_result(block=False) is None  # polled long before the engines are done
    assert pr.get_result(default="not yet", block=False) == "not yet"
    assert pr.wait(timeout=T)
    assert repr(pr.r) == results_list(*[(i, 3, "time.sleep(0.5)") for i in range(4)])

    # Uneven counters, as in the seed's In [75]: engines 0 and 2 ran one more command.
    mec.execute("pass", targets=[0, 2], timeout=T)
    mec.block = False
    pr_list = [mec.execute("time.sleep(0.03)") for i in range(10)]
    assert all(isinstance(p, client.PendingResult) for p in pr_list)

    assert mec.barrier(pr_list, timeout=T) is None

    assert all(p.done() for p in pr_list)
    first = pr_list[0].get_result(block=False)
    assert repr(first) == results_list(
        (0, 5, "time.sleep(0.03)"),
        (1, 4, "time.sleep(0.03)"),
        (2, 5, "time.sleep(0.03)"),
        (3, 4, "time.sleep(0.03)"),
    )
    assert repr(pr_list[9].r) == results_list(
        (0, 14, "time.sleep(0.03)"),
        (1, 13, "time.sleep(0.03)"),
        (2, 14, "time.sleep(0.03)"),
        (3, 13, "time.sleep(0.03)"),
    )

    # A barrier that cannot be met in time says so rather than hanging.
    slow = mec.execute("time.sleep(0.5)")
    with pytest.raises(client.PxclusterTimeoutError):
        mec.barrier([slow], timeout=0.01)
    mec.barrier([slow], timeout=T)
    assert slow.done()


def test_targets_and_block_attributes(mec):
    mec.execute("a=5", timeout=T)
    mec.execute("import time", targets=[0, 2], timeout=T)

    mec.targets = [0, 2]
    mec.block = False
    pr = mec.execute("a=5")
    assert isinstance(pr, client.PendingResult)
    assert pr.wait(timeout=T)
    assert repr(pr.r) == results_list((0, 3, "a=5"), (2, 3, "a=5"))

    # Keyword arguments override the attributes for one call.
    assert repr(mec.execute("e=1", targets=3, block=True, timeout=T)) == results_list((3, 2, "e=1"))
    assert mec.pull("a", block=True, timeout=T) == [5, 5]

    # targets='all' means all engines.
    mec.targets = "all"
    mec.block = True
    assert repr(mec.execute("b=10; print(b)", timeout=T)) == results_list(
        (0, 4, "b=10; print(b)", "10"),
        (1, 2, "b=10; print(b)", "10"),
        (2, 4, "b=10; print(b)", "10"),
        (3, 3, "b=10; print(b)", "10"),
    )


# -- seed 004: moving Python objects around ------------------------------------------------


def test_push_pull_and_zip_pull(mec):
    assert mec.push(dict(a=1.03234, b=3453), timeout=T) == [None, None, None, None]
    assert mec.pull("a", timeout=T) == [1.03234, 1.03234, 1.03234, 1.03234]
    assert mec.pull("b", targets=0, timeout=T) == [3453]
    assert mec.pull(("a", "b"), timeout=T) == [
        [1.03234, 3453],
        [1.03234, 3453],
        [1.03234, 3453],
        [1.03234, 3453],
    ]
    assert mec.zip_pull(("a", "b"), timeout=T) == [
        (1.03234, 1.03234, 1.03234, 1.03234),
        (3453, 3453, 3453, 3453),
    ]
    assert mec.push(dict(c="speed"), timeout=T) == [None, None, None, None]
    assert repr(mec.execute("print(c)", timeout=T)) == results_list(
        *[(i, 1, "print(c)", "speed") for i in range(4)]
    )

    # In non-blocking mode push and pull return PendingResults.
    mec.block = False
    pr = mec.pull("a")
    assert isinstance(pr, client.PendingResult)
    assert pr.wait(timeout=T)
    assert pr.r == [1.03234, 1.03234, 1.03234, 1.03234]
    pushed = mec.push(dict(d=4))
    assert isinstance(pushed, client.PendingResult)
    assert pushed.get_result(timeout=T) == [None, None, None, None]
    zipped = mec.zip_pull(("c", "d"))
    assert zipped.get_result(timeout=T) == [("speed",) * 4, (4, 4, 4, 4)]


def test_push_function_then_execute(mec):
    def f(x):
        return 2.0 * x**4

    assert mec.push_function(dict(f=f), timeout=T) == [None, None, None, None]
    assert repr(mec.execute("y = f(4.0)", timeout=T)) == results_list(
        *[(i, 1, "y = f(4.0)") for i in range(4)]
    )
    assert repr(mec.execute("print(y)", timeout=T)) == results_list(
        *[(i, 2, "print(y)", "512.0") for i in range(4)]
    )
    assert mec.pull("y", timeout=T) == [512.0] * 4

    pulled = mec.pull_function("f", timeout=T)
    assert [g(4.0) for g in pulled] == [512.0] * 4


def test_dictionary_interface_and_single_engine_views(mec):
    # seed 004 In [51]-[52]
    mec["a"] = ["foo", "bar"]
    assert mec["a"] == [["foo", "bar"], ["foo", "bar"], ["foo", "bar"], ["foo", "bar"]]

    # seed 000 In [27]-[31]
    mec["a"] = 10
    assert mec["a"] == [10, 10, 10, 10]
    for engine in range(4):
        mec[engine]["b"] = 20
    assert mec["b"] == [20, 20, 20, 20]
    mec[0]["b"] = 21
    assert mec[0]["b"] == 21
    assert mec.pull("b", targets=[0, 1], timeout=T) == [21, 20]

    # seed 000 In [20]-[26]: push to one engine, pull from a list; views return scalars.
    assert mec.push(dict(a=10), targets=0, timeout=T) == [None]
    assert mec.push(dict(a=20), targets=1, timeout=T) == [None]
    assert mec.pull("a", targets=[0, 1], timeout=T) == [10, 20]
    assert mec[0].push(dict(a=10), timeout=T) is None
    assert mec[0].pull("a", timeout=T) == 10
    assert mec[1].pull("a", timeout=T) == 20

    # seed 000 In [7]-[9]: execute on one engine, by id or through its view.
    assert repr(mec.execute("c = 30", targets=0, timeout=T)) == results_list((0, 1, "c = 30"))
    assert repr(mec.execute("c = 40", targets=1, timeout=T)) == results_list((1, 1, "c = 40"))
    assert repr(mec[0].execute("d = 10", timeout=T)) == results_list((0, 2, "d = 10"))
    assert mec.pull(("c", "d"), targets=0, timeout=T) == [[30, 10]]
    assert mec[1]["c"] == 40


def test_scatter_and_gather(mec):
    assert mec.scatter("a", range(16), timeout=T) == [None, None, None, None]
    assert repr(mec.execute("print(a)", timeout=T)) == results_list(
        (0, 1, "print(a)", "[0, 1, 2, 3]"),
        (1, 1, "print(a)", "[4, 5, 6, 7]"),
        (2, 1, "print(a)", "[8, 9, 10, 11]"),
        (3, 1, "print(a)", "[12, 13, 14, 15]"),
    )
    assert mec.gather("a", timeout=T) == list(range(16))

    # Uneven lengths: contiguous parts, longer ones first.
    mec.scatter("a", range(10), timeout=T)
    assert mec.pull("a", timeout=T) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert mec.gather("a", timeout=T) == list(range(10))

    # seed 000 on two engines: Scatter(range(10)) then pull.
    assert mec.scatter("a", range(10), targets=[0, 1], timeout=T) == [None, None]
    assert mec.pull("a", targets=[0, 1], timeout=T) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert mec.gather("a", targets=[0, 1], timeout=T) == list(range(10))

    # Unit-length parts stay lists unless flatten is asked for.
    mec.scatter("a", range(2), targets=[0, 1], timeout=T)
    assert mec.pull("a", targets=[0, 1], timeout=T) == [[0], [1]]
    mec.scatter("a", range(2), targets=[0, 1], flatten=True, timeout=T)
    assert mec.pull("a", targets=[0, 1], timeout=T) == [0, 1]
    assert mec.gather("a", targets=[0, 1], timeout=T) == [0, 1]

    # Non-blocking scatter and gather.
    scattered = mec.scatter("z", range(8), block=False)
    assert isinstance(scattered, client.PendingResult)
    assert scattered.get_result(timeout=T) == [None, None, None, None]
    gathered = mec.gather("z", block=False)
    assert isinstance(gathered, client.PendingResult)
    assert gathered.get_result(timeout=T) == list(range(8))


def test_parallel_list_comprehension_with_scatter_and_gather(mec):
    assert mec.scatter("x", range(64), timeout=T) == [None, None, None, None]
    assert repr(mec.execute("y = [i**10 for i in x]", timeout=T)) == results_list(
        *[(i, 1, "y = [i**10 for i in x]") for i in range(4)]
    )

    y = mec.gather("y", timeout=T)

    assert y == [i**10 for i in range(64)]
    assert str(y[:9]) == "[0, 1, 1024, 59049, 1048576, 9765625, 60466176, 282475249, 1073741824]"

    # seed 000 In [23]-[25]
    mec.scatter("a", range(10), timeout=T)
    mec.execute("b = [x*x for x in a]", timeout=T)
    assert mec.gather("a", timeout=T) == list(range(10))
    assert mec.gather("b", timeout=T) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]


def test_map_and_parallelize(mec):
    serial_result = list(map(lambda x: x**10, range(32)))
    parallel_result = mec.map(lambda x: x**10, range(32), timeout=T)
    assert serial_result == parallel_result

    # seed 000: the function given as a string, evaluated on the engines.
    assert mec.map("lambda x: x*x", range(10), timeout=T) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

    # Several sequences, stopping at the shortest, like the builtin.
    assert mec.map(pow, [2, 3, 4, 5, 6], [1, 2, 3], timeout=T) == list(
        map(pow, [2, 3, 4, 5, 6], [1, 2, 3])
    )

    # map follows targets and block like every other call.
    pr = mec.map(lambda x: -x, range(6), targets=[1, 2], block=False)
    assert isinstance(pr, client.PendingResult)
    assert pr.get_result(timeout=T) == [0, -1, -2, -3, -4, -5]

    f = mec.parallelize("lambda x: x*x")
    assert f(range(10)) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    g = mec.parallelize(lambda x: x + 1, targets=[0, 3], block=False)
    assert g(range(5)).get_result(timeout=T) == [1, 2, 3, 4, 5]


def test_apply_calls_a_function_on_each_target(mec):
    # Not in the seeds: ipyparallel's view.apply, which users of a parallel shell expect.
    assert mec.apply(lambda x, y=1: x + y, 2, y=3) == [5, 5, 5, 5]
    pids = mec.apply(__import__("os").getpid)
    assert len(set(pids)) == 4
    assert mec[1].apply(__import__("os").getpid) == pids[1]
    mec.block = False
    try:
        pending = mec.apply(divmod, 7, 2)
        assert pending.get_result(timeout=T) == [(3, 1)] * 4
    finally:
        mec.block = True
    with pytest.raises(client.CompositeError) as info:
        mec.apply(lambda: 1 / 0)
    assert "[0:apply]: ZeroDivisionError" in str(info.value)


# -- seed 004: parallel exceptions ---------------------------------------------------------


def test_composite_error_message_raise_exception_and_tracebacks(mec, capsys):
    mec.block = True
    with pytest.raises(client.CompositeError) as info:
        mec.execute("1/0", timeout=T)
    e = info.value

    assert str(e) == composite_text("execute", range(4), "ZeroDivisionError: division by zero")
    assert [err.engine_id for err in e.elist] == [0, 1, 2, 3]
    assert all(isinstance(err, client.RemoteError) for err in e.elist)
    assert {(err.ename, err.evalue) for err in e.elist} == {
        ("ZeroDivisionError", "division by zero")
    }

    # The seed's In [80]: re-raise one of the original exceptions.
    def reraise():
        try:
            mec.execute("1/0", timeout=T)
        except client.CompositeError as err:
            err.raise_exception()

    with pytest.raises(ZeroDivisionError, match="division by zero") as raised:
        reraise()
    assert isinstance(raised.value.__cause__, client.RemoteError)
    with pytest.raises(ZeroDivisionError):
        e.raise_exception(3)
    with pytest.raises(IndexError):
        e.raise_exception(4)

    capsys.readouterr()
    e.print_tracebacks()
    printed = capsys.readouterr().out

    headers = [f"[{i}:execute]: " for i in range(4)]
    positions = [printed.index(h + "\n") for h in headers]
    assert positions == sorted(positions)
    sections = [
        printed[a:b] for a, b in zip(positions, [*positions[1:], len(printed)], strict=True)
    ]
    for engine, section in enumerate(sections):
        assert "Traceback (most recent call last):" in section
        assert f"<engine {engine} In [1]>" in section
        assert "\n    1/0\n" in section
        assert section.rstrip().endswith("ZeroDivisionError: division by zero")


EXCEPT_STAR = textwrap.dedent(
    """
    def catch_remote_errors(call):
        caught = []
        try:
            call()
        except* client.RemoteError as group:
            caught.append(group)
        return caught
    """
)


def test_composite_error_non_blocking_and_except_star(mec):
    mec.block = False
    pr = mec.execute("1/0")
    assert isinstance(pr, client.PendingResult)
    assert pr.wait(timeout=T)
    with pytest.raises(client.CompositeError) as info:
        _ = pr.r
    assert str(info.value) == composite_text(
        "execute", range(4), "ZeroDivisionError: division by zero"
    )
    with pytest.raises(client.CompositeError):
        pr.get_result(timeout=T)

    # Only the failing engines are named; the traceback shows the failing line.
    pr = mec.execute("x = 1\ny = x/0", targets=[1, 3])
    with pytest.raises(client.CompositeError) as info:
        pr.get_result(timeout=T)
    assert str(info.value) == composite_text(
        "execute", [1, 3], "ZeroDivisionError: division by zero"
    )
    for err in info.value.elist:
        assert "line 2, in <module>\n    y = x/0\n" in err.traceback

    # It is an exception group of RemoteErrors: split() is what except* uses.
    matched, rest = info.value.split(client.RemoteError)
    assert isinstance(matched, client.CompositeError)
    assert [err.engine_id for err in matched.exceptions] == [1, 3]
    assert rest is None

    if sys.version_info >= (3, 11):  # except* is Python 3.11 syntax; compiled only there
        namespace = {"client": client}
        exec(EXCEPT_STAR, namespace)
        caught = namespace["catch_remote_errors"](
            lambda: mec.execute("1/0", targets=[0, 2], block=True, timeout=T)
        )
        assert len(caught) == 1
        assert isinstance(caught[0], client.CompositeError)
        assert [err.engine_id for err in caught[0].exceptions] == [0, 2]
        assert {err.ename for err in caught[0].exceptions} == {"ZeroDivisionError"}


# -- seed 000: other commands --------------------------------------------------------------


def test_reset_then_pull_raises_name_error_and_reconnect(cluster4, mec):
    mec["a"] = 10
    assert mec.keys(timeout=T) == [["a"], ["a"], ["a"], ["a"]]

    assert mec.reset(timeout=T) == [None, None, None, None]

    assert mec.keys(timeout=T) == [[], [], [], []]
    with pytest.raises(client.CompositeError) as info:
        mec.pull("a", timeout=T)
    assert str(info.value) == composite_text("pull", range(4), "NameError: name 'a' is not defined")
    with pytest.raises(NameError, match="'a' is not defined"):
        info.value.raise_exception()

    # Disconnect, then connect again: the engines kept running.
    mec.close()
    again = cluster4.client()
    assert repr(again.execute("a = 5", timeout=T)) == results_list(
        *[(i, 1, "a = 5") for i in range(4)]
    )
    assert again.pull("a", timeout=T) == [5, 5, 5, 5]


def test_kill_engines_for_good(cluster4, mec):
    mec.execute("import os; pid = os.getpid()", timeout=T)
    pids = mec.pull("pid", timeout=T)
    assert sorted(pids) == sorted(cluster4.engine_pids)

    assert mec.kill(targets=[3], timeout=T) == [None]

    wait_for(lambda: not leftover_processes(pids[3:]), timeout=T, message="engine 3 exits")
    assert leftover_processes(pids[:3]) == pids[:3]
    assert mec.get_ids(timeout=T) == [0, 1, 2]
    # 'all' now means the engines that are left.
    assert repr(mec.execute("a = 5", timeout=T)) == results_list(
        *[(i, 2, "a = 5") for i in range(3)]
    )

    assert mec.kill(timeout=T) == [None, None, None]

    wait_for(lambda: not leftover_processes(pids), timeout=T, message="every engine exits")
    assert mec.get_ids(timeout=T) == []


# -- Python 3 additions: asyncio and run(file) ---------------------------------------------


def test_asyncio_awaits_pending_results(mec):
    async def main():
        pr = mec.execute("import time; time.sleep(0.1); z = 7", block=False)
        executed = await asyncio.wait_for(pr, timeout=T)
        pulled, keys = await asyncio.wait_for(
            asyncio.gather(mec.pull("z", block=False), mec.keys(block=False)), timeout=T
        )
        with pytest.raises(client.CompositeError) as info:
            await asyncio.wait_for(mec.execute("1/0", targets=[2], block=False), timeout=T)
        return executed, pulled, keys, info.value

    executed, pulled, keys, error = asyncio.run(main())

    assert repr(executed) == results_list(
        *[(i, 1, "import time; time.sleep(0.1); z = 7") for i in range(4)]
    )
    assert pulled == [7, 7, 7, 7]
    assert keys == [["z"]] * 4
    assert str(error) == composite_text("execute", [2], "ZeroDivisionError: division by zero")


def test_run_a_file(mec, tmp_path):
    script = tmp_path / "script.py"
    script.write_text("x = 6 * 7\nprint(x)\n")

    result = mec.run(script, targets=[0, 1], timeout=T)

    assert repr(result) == "\n".join(
        [
            "<Results List>",
            "[0] In [1]: x = 6 * 7",
            "            print(x)",
            "[0] Out[1]: 42",
            "",
            "[1] In [1]: x = 6 * 7",
            "            print(x)",
            "[1] Out[1]: 42",
        ]
    )
    assert mec.pull("x", targets=[0, 1], timeout=T) == [42, 42]

    pr = mec.run(str(script), block=False)
    assert [r["stdout"] for r in pr.get_result(timeout=T)] == ["42\n"] * 4
