"""Big buffers between a client and engines on one host travel through shared memory."""

import os

import numpy as np
import pytest

from pxcluster import client
from pxcluster.serialize import SHM_THRESHOLD, shm_available

pytestmark = pytest.mark.skipif(not shm_available(), reason="no /dev/shm here")


def segments():
    return sorted(f for f in os.listdir("/dev/shm") if f.startswith("pxshm-"))


def test_big_arrays_round_trip_and_leave_no_segment(mec):
    before = segments()
    big = np.random.default_rng(1).random(3 * SHM_THRESHOLD // 8)
    assert mec._core.same_host(mec.get_ids())
    mec.push({"big": big}, targets=[0, 1], timeout=30)
    for engine in (0, 1):
        assert np.array_equal(mec[engine].pull("big", timeout=30), big)
    mec.scatter("part", big, timeout=30)
    assert np.array_equal(mec.gather("part", timeout=30), big)
    assert segments() == before


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
    assert segments() == before
