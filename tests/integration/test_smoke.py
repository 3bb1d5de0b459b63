"""The shortest path a new user takes: start a cluster, compute, stop."""

from pxcluster import MultiEngineClient
from pxcluster.testing import wait_for


def test_four_engines_compute(mec: MultiEngineClient) -> None:
    assert mec.get_ids() == [0, 1, 2, 3]
    assert mec.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]



def test_a_value_a_push_replaces_is_freed(mec: MultiEngineClient) -> None:
    # The engine frees what a push replaced after replying, in a background thread; it must
    # still free it, soon.
    mec.execute(
        "import builtins\n"
        "builtins.px_test_freed = False\n"
        "class Tracked:\n"
        "    def __del__(self):\n"
        "        builtins.px_test_freed = True\n"
        "tracked = Tracked()\n"
        "del Tracked",
        targets=0,
    )
    mec.push({"tracked": 1}, targets=0)
    assert mec[0].pull("tracked") == 1
    wait_for(
        lambda: mec[0].apply(lambda: __import__("builtins").px_test_freed),
        timeout=10,
        message="the replaced value freed",
    )
