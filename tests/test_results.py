"""Client layer: ResultList layout, CompositeError, PendingResult and partitioning."""

import asyncio
import pickle
import sys

import pytest

from pxcluster._errors import CompositeError, EngineDied, PxclusterTimeoutError, RemoteError
from pxcluster.client._partition import concatenate, partition
from pxcluster.client._results import PendingResult, ResultList
from pxcluster.wire import Message, MsgType, Status

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # pragma: no cover
    from exceptiongroup import ExceptionGroup


def entry(engine, number, code, stdout="", display=None, stderr=""):
    return {"id": engine, "number": number, "input": {"raw": code, "translated": code},
            "stdout": stdout, "stderr": stderr, "display": display}


def test_result_list_prints_like_the_seeds():
    results = ResultList([entry(0, 4, "print(c)", "15\n"), entry(1, 4, "print(c)", "-5\n")])
    assert repr(results) == (
        "<Results List>\n[0] In [4]: print(c)\n[0] Out[4]: 15\n\n"
        "[1] In [4]: print(c)\n[1] Out[4]: -5"
    )
    silent = ResultList([entry(0, 1, "a=5"), entry(1, 1, "a=5")])
    assert repr(silent) == "<Results List>\n[0] In [1]: a=5\n[1] In [1]: a=5"


def test_result_list_multiline_display_and_stderr():
    out = repr(ResultList([entry(2, 7, "x\ny", "a\nb\n", display="3", stderr="warn\n")]))
    assert out == ("<Results List>\n[2] In [7]: x\n            y\n[2] Out[7]: a\n"
                   "            b\n            3\n[2] Err[7]: warn")


def remote(engine):
    return RemoteError(engine, "ZeroDivisionError", "division by zero",
                       "Traceback ...\n  1/0\nZeroDivisionError: division by zero\n",
                       ZeroDivisionError("division by zero"))


def test_composite_error_message_and_reraise():
    err = CompositeError("execute", [remote(0), remote(1)])
    assert str(err) == (
        "one or more exceptions from call to method: execute\n"
        "[0:execute]: ZeroDivisionError: division by zero\n"
        "[1:execute]: ZeroDivisionError: division by zero"
    )
    with pytest.raises(ZeroDivisionError):
        err.raise_exception(1)
    with pytest.raises(IndexError):
        err.raise_exception(5)


def test_composite_error_is_an_exception_group():
    err = CompositeError("execute", [remote(0), EngineDied("engine 1 died", 1)])
    assert isinstance(err, ExceptionGroup)
    remote_part, rest = err.split(RemoteError)  # what ``except* RemoteError`` does
    assert [e.engine_id for e in remote_part.exceptions] == [0]
    assert isinstance(remote_part, CompositeError)
    assert str(remote_part).startswith("one or more exceptions from call to method: execute")
    assert [type(e) for e in rest.exceptions] == [EngineDied]


def test_composite_error_pickles(capsys):
    err = pickle.loads(pickle.dumps(CompositeError("pull", [remote(3)])))
    assert "[3:pull]: ZeroDivisionError" in str(err)
    err.print_tracebacks()
    assert "[3:pull]: \nTraceback ...\n  1/0" in capsys.readouterr().out


def reply(parent, engine, status=Status.OK, **content):
    return Message(MsgType.REPLY, f"r-{parent}-{engine}", content, parent=parent,
                   engine=engine, status=status)


def test_pending_result_waits_for_every_engine():
    pr = PendingResult("keys", [("m", 0), ("m", 1)], lambda rs: [r.engine for r in rs])
    pr.add_reply(reply("m", 1))
    assert pr.get_result(block=False, default="not yet") == "not yet"
    with pytest.raises(PxclusterTimeoutError):
        pr.get_result(timeout=0.01)
    pr.add_reply(reply("m", 0))
    assert pr.r == [0, 1]


def test_pending_result_fails_fast_when_an_engine_dies():
    pr = PendingResult("execute", [("m", 0), ("m", 1)], list)
    pr.add_reply(reply("m", 1, Status.ENGINE_ERROR, error="engine 1 died", kind="died"))
    with pytest.raises(CompositeError) as info:
        pr.get_result(timeout=1)
    assert isinstance(info.value.elist[0], EngineDied)
    assert info.value.elist[0].engine_id == 1


def test_pending_result_can_be_awaited():
    pr = PendingResult("get", [("m", 0)], lambda rs: "done")

    async def main():
        asyncio.get_running_loop().call_soon(pr.add_reply, reply("m", 0))
        return await pr

    assert asyncio.run(main()) == "done"


@pytest.mark.parametrize(
    ("seq", "parts", "expected"),
    [
        (range(10), 4, [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]),
        (range(2), 4, [[0], [1], [], []]),
        ((1, 2, 3), 2, [(1, 2), (3,)]),
    ],
)
def test_partition(seq, parts, expected):
    assert partition(seq, parts) == expected
    assert concatenate(partition(seq, parts)) == list(seq)


def test_partition_flatten_and_numpy():
    import numpy as np

    assert partition(range(2), 2, flatten=True) == [0, 1]
    arr = np.arange(9)
    pieces = partition(arr, 2)
    assert np.shares_memory(pieces[0], arr)
    assert np.array_equal(concatenate(pieces), arr)


def test_timeout_is_also_the_builtin_timeout_error():
    assert issubclass(PxclusterTimeoutError, TimeoutError)


def test_pending_result_answers_ipyparallels_names():
    pending = PendingResult("apply", [("m", 0), ("m", 1)], lambda rs: [r.engine for r in rs])
    assert not pending.ready()
    with pytest.raises(ValueError, match="not finished"):
        pending.successful()
    with pytest.raises(PxclusterTimeoutError, match=r"apply did not finish within 0\.01 s"):
        pending.result(timeout=0.01)  # the Future's own method says what timed out, too
    assert not pending.wait(0.01)
    running = pending.elapsed
    pending.add_reply(reply("m", 0))
    pending.add_reply(reply("m", 1))
    assert pending.ready()
    assert pending.successful()
    assert pending.get(1) == [0, 1]
    assert pending.elapsed >= running


def test_pending_result_repr_counts_engines_not_messages():
    keys = [(m, e) for m in ("clear", "interrupt") for e in range(4)]
    assert "on 4 engine(s)" in repr(PendingResult("interrupt", keys, list))


def test_display_outputs_of_an_apply(capsys):
    pending = PendingResult("apply", [("m", 0), ("m", 1)], lambda rs: [None, None])
    pending.add_reply(reply("m", 0, stdout="zero\n", stderr=""))
    pending.add_reply(reply("m", 1))  # printed nothing
    pending.display_outputs()
    assert capsys.readouterr().out == "[stdout:0] zero\n"
