"""The shortest path a new user takes: start a cluster, compute, stop."""

from pxcluster import MultiEngineClient


def test_four_engines_compute(mec: MultiEngineClient) -> None:
    assert mec.get_ids() == [0, 1, 2, 3]
    assert mec.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]
