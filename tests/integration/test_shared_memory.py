"""Big buffers between a client and engines on one host travel through shared memory."""

import gc
import os

import numpy as np
import pytest

from pxcluster import client
from pxcluster.serialize import SHM_THRESHOLD, shm_available
from pxcluster.testing import wait_for

pytestmark = pytest.mark.skipif(not shm_available(), reason="no /dev/shm here")


def segments():
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith("pxshm-"))


def no_new_segments(before):
    """Segments go once nothing maps them (unlinked by a background thread): wait for it."""
    gc.collect()
    wait_for(lambda: segments() == before, timeout=10, message="no segment left behind")


def test_big_arrays_round_trip_and_leave_no_segment(mec):
    before = segments()
    big = np.random.default_rng(1).random(3 * SHM_THRESHOLD // 8)
    assert mec._core.same_host(mec.get_ids())
    mec.push({"big": big}, targets=[0, 1], timeout=30)
    for engine in (0, 1):
        assert np.array_equal(mec[engine].pull("big", timeout=30), big)
    mec.scatter("part", big, timeout=30)
    assert np.array_equal(mec.gather("part", timeout=30), big)
    no_new_segments(before)


def test_the_engine_copy_is_its_own(mec):
    big = np.ones(2 * SHM_THRESHOLD // 8)
    mec.push({"big": big}, targets=0, timeout=30)
    mec.execute("big[0] = -5.0", targets=0, timeout=10)  # writable on the engine ...
    assert mec[0].pull("big", timeout=30)[0] == -5.0
    assert big[0] == 1.0  # ... and the client's array is untouched


def test_a_failed_pull_leaves_no_segment(mec):
    before = segments()
    mec.execute("import numpy; big = numpy.zeros(400_000)", targets=[0, 1], timeout=20)
    mec.execute("del big", targets=[1], timeout=10)
    with pytest.raises(client.CompositeError):
        mec.pull("big", targets=[0, 1], timeout=30)  # engine 0 answers with a segment
    no_new_segments(before)


def test_gather_of_big_arrays_writes_the_parts_into_one_segment(mec):
    before = segments()
    grid = np.arange(4 * 300_000, dtype=np.float32).reshape(-1, 4)  # rows split over 4
    mec.scatter("grid", grid, timeout=30)
    got = mec.gather("grid", timeout=30)
    assert got.dtype == np.float32
    assert got.shape == grid.shape
    assert np.array_equal(got, grid)
    got[0, 0] = -1.0  # the result is the caller's own, writable array
    assert np.array_equal(mec.gather("grid", targets=[2, 3], timeout=30), grid[150_000:])
    pending = mec.gather("grid", block=False)
    assert np.array_equal(pending.get_result(timeout=30), grid)
    assert len(segments()) > len(before)  # the results' segments live as long as they do
    del got, pending
    no_new_segments(before)


def test_gather_of_mixed_parts_joins_them_like_numpy(mec):
    before = segments()
    mec.execute("import numpy; part = numpy.ones(300_000)", targets=[0], timeout=20)
    mec.execute("import numpy; part = numpy.zeros(300_000, dtype='int32')", targets=[1])
    mec.execute("import numpy; part = numpy.arange(3.0)", targets=[2])  # small
    got = mec.gather("part", targets=[0, 1, 2], timeout=30)
    expected = np.concatenate([np.ones(300_000), np.zeros(300_000, "int32"), np.arange(3.0)])
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)
    mec.execute("del part", targets=[2])
    with pytest.raises(client.CompositeError) as info:
        mec.gather("part", targets=[0, 1, 2], timeout=30)
    assert [e.ename for e in info.value.elist] == ["NameError"]
    no_new_segments(before)
