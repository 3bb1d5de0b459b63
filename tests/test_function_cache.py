"""Functions sent again are pickled once and rebuilt once, but never stale
(serialize/_functions.py): what a function reads when it runs is what the sender has now."""

from typing import Any

from pxcluster.serialize import FunctionMemo, dumps, loads
from pxcluster.serialize._functions import FunctionFrames


def main_function(source: str, **names: Any) -> tuple[Any, dict[str, Any]]:
    """A function defined in a ``__main__`` (so it travels by value), and its globals."""
    namespace: dict[str, Any] = {"__name__": "__main__", **names}
    exec(source, namespace)
    return namespace["f"], namespace


def round_trip(func: Any) -> Any:
    return loads(dumps(func))


def counting_pickler(func: Any) -> tuple[FunctionFrames, Any, list[int]]:
    cache, calls = FunctionFrames(), [0]

    def frames() -> list[bytes]:
        calls[0] += 1
        return [bytes(b) for b in dumps(func)]

    return cache, lambda: cache.frames(func, frames), calls


def test_a_function_sent_again_is_not_pickled_again():
    f, _ = main_function(
        "import math\ndef f(x: float, k=2, *, m: int = 0) -> int:\n"
        "    return math.floor(x) * k + N + m",
        N=1,
    )
    _, send, calls = counting_pickler(f)
    first = send()
    assert send() == first
    assert calls == [1]
    assert loads(first)(3.5) == 7


def test_what_the_function_reads_is_never_stale():
    f, namespace = main_function("def f():\n    return N + M", N=1)
    namespace["M"] = 10  # a name defined after the function
    assert round_trip(f)() == 11
    namespace["N"] = 2  # rebound
    assert round_trip(f)() == 12
    f.__defaults__ = ()
    namespace["f"] = f
    assert round_trip(f)() == 12
    exec("def f():\n    return N * M", namespace)  # redefined: a new function
    assert round_trip(namespace["f"])() == 20


def test_functions_with_state_of_their_own_are_pickled_every_time():
    f, namespace = main_function("def f():\n    return list(L)", L=[1])
    _, send, calls = counting_pickler(f)
    send()
    namespace["L"].append(2)  # mutated, not rebound: only a new pickle shows it
    assert loads(send())() == [1, 2]
    assert calls == [2]
    assert round_trip(f)() == [1, 2]

    def closure() -> Any:
        seen = [0]

        def g() -> int:
            return seen[0]

        return g, seen

    g, seen = closure()
    _, send, calls = counting_pickler(g)
    send()
    seen[0] = 5
    assert loads(send())() == 5
    assert calls == [2]


def test_the_receiver_rebuilds_a_function_once_unless_it_has_state():
    memo = FunctionMemo()
    f, _ = main_function("def f(x):\n    return x + 1")
    frames = dumps(f)
    rebuilt = [memo.loads(frames, lambda: loads(frames)) for _ in range(3)]
    assert rebuilt[0] is rebuilt[1] is rebuilt[2]
    assert rebuilt[0](1) == 2

    # a mutable default keeps what calls put in it: every task gets a fresh one, as before
    g, _ = main_function("def f(x, seen=[]):\n    seen.append(x)\n    return len(seen)")
    frames = dumps(g)
    calls = [memo.loads(frames, lambda: loads(frames))(i) for i in range(3)]
    assert calls == [1, 1, 1]

    # data never lands in the memo
    data = dumps(list(range(5)))
    assert memo.loads(data, lambda: loads(data)) == [0, 1, 2, 3, 4]
    assert len(memo._kept) == 1
