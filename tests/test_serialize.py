"""Serialize layer: pickle 5 with out-of-band buffers, cloudpickle for code."""

import linecache
import threading
import traceback

import numpy as np
import pytest

from pxcluster._errors import SerializationError
from pxcluster.serialize import (
    OUT_OF_BAND_THRESHOLD,
    SHM_THRESHOLD,
    dumps,
    dumps_many,
    export_frames,
    import_frames,
    loads,
    loads_many,
    shm_available,
)


def test_numpy_array_travels_out_of_band_without_copy():
    arr = np.arange(1_000_000, dtype=np.float64)
    frames = dumps(arr)
    assert len(frames) == 2
    assert len(frames[0]) < 1000  # the pickle holds no data
    assert np.shares_memory(np.frombuffer(frames[1], dtype=np.float64), arr)
    back = loads(frames)
    assert np.array_equal(back, arr)


def test_small_buffers_stay_in_band():
    assert len(dumps(np.arange(10))) == 1
    assert len(dumps(b"x" * (OUT_OF_BAND_THRESHOLD - 1))) == 1


def test_lambda_and_closure_roundtrip():
    k = 7
    frames = dumps(lambda x: x * k)
    assert loads(frames)(6) == 42


def test_unpicklable_names_the_object():
    with pytest.raises(SerializationError, match=r"'lock'.*_thread\.lock"):
        dumps(threading.Lock(), name="'lock'")


def test_garbage_payload_is_a_serialization_error():
    with pytest.raises(SerializationError, match="cannot unpickle"):
        loads([b"not a pickle"])


def test_many_roundtrip_and_count_mismatch():
    counts, frames = dumps_many([("a", 1), ("b", np.ones(100_000))])
    a, b = loads_many(counts, frames)
    assert a == 1
    assert b.sum() == 100_000
    with pytest.raises(SerializationError, match="counts"):
        loads_many([1], frames)


def test_plain_values_and_code_inside_containers_round_trip():
    # small plain values take the C pickler; anything else (code, subclasses) cloudpickle
    import enum

    class Colour(enum.IntEnum):
        RED = 1

    for value in [None, 3, 2.5, "s", b"b", (), {}, (1, "a"), [1.5, None], {"k": 1}]:
        assert loads(dumps(value)) == value
    made = loads(dumps((lambda: 7, {"f": lambda: 8})))
    assert made[0]() == 7
    assert made[1]["f"]() == 8
    assert loads(dumps(Colour.RED)) == 1
    assert loads(dumps([1] * 100)) == [1] * 100


@pytest.mark.skipif(not shm_available(), reason="no /dev/shm here")
def test_a_received_segment_goes_when_its_last_array_does():
    import gc
    import os
    import time

    data = np.arange(SHM_THRESHOLD // 8 + 1, dtype=np.float64)
    frames, indexes, names = export_frames([memoryview(data).cast("B")])
    (view,) = import_frames(frames, indexes, unlink_after=True)
    array = np.frombuffer(view, dtype=np.float64)
    del view
    assert os.path.exists(f"/dev/shm/{names[0]}")  # still in use
    assert np.array_equal(array, data)
    del array
    gc.collect()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/dev/shm/{names[0]}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/dev/shm/{names[0]}")


def _cell_function(source: str, filename: str, name: str):
    """A function as a notebook defines it: its source only in this process's linecache."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_functions_sent_by_value_keep_their_filename_and_source_lines():
    # Whatever cloudpickle does to co_filename (3.1.3 writes "<dynamic-code>"), the receiver
    # sees the sender's filename and line, and the lines themselves though it has no file.
    filename = "<ipython-input-7-pxcluster-test>"
    source = (
        "x = 1\n\n@staticmethod\ndef explode(x):\n    y = [x for _ in range(2)]\n"
        "    return x / 0\n"
    )
    explode = _cell_function(source, filename, "explode").__func__
    frames = dumps(explode)
    del linecache.cache[filename]
    received = loads(frames)
    assert received.__code__.co_filename == filename
    with pytest.raises(ZeroDivisionError) as info:
        received(1)
    text = "".join(traceback.format_exception(info.value))
    assert f'File "{filename}", line 6, in explode' in text
    assert "return x / 0" in text
    assert linecache.getline(filename, 5).strip() == "y = [x for _ in range(2)]"


def test_source_lines_of_functions_sent_one_by_one_add_up():
    filename = "<ipython-input-8-pxcluster-test>"
    source = "def first():\n    return 1 / 0\n\ndef second():\n    return [][1]\n"
    first = _cell_function(source, filename, "first")
    second = _cell_function(source, filename, "second")
    frames = [dumps(first), dumps(second)]
    del linecache.cache[filename]
    for f in frames:
        loads(f)
    assert linecache.getline(filename, 2).strip() == "return 1 / 0"
    assert linecache.getline(filename, 5).strip() == "return [][1]"
