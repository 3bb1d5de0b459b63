"""Controller layer: the SQLite record store of finished tasks."""

import sqlite3

from pxcluster.controller import RecordStore, Retention


def record(store, i, session="s", payload=b"x" * 10):
    return store.make_record(f"t{i}", session, 0, 1.0, 2.0, 0, b"header", [payload])


def test_records_survive_flush_and_reopen(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = RecordStore(path)
    store.add(record(store, 1))
    assert store.get("t1").frames == [b"x" * 10]  # from the cache, before any flush
    store.close()
    again = RecordStore(path)
    got = again.get("t1")
    assert (got.id, got.session, got.header, got.frames) == ("t1", "s", b"header", [b"x" * 10])
    assert again.get("t2") is None
    again.close()


def test_retention_keeps_the_newest_records(tmp_path):
    store = RecordStore(tmp_path / "db", Retention(max_records=100, cache_records=10))
    for i in range(250):
        store.add(record(store, i))
        if i % 50 == 49:
            store.flush()
    assert store.stats()["records"] <= 100
    assert store.get("t249") is not None
    assert store.get("t0") is None
    store.close()


def test_result_over_the_cap_keeps_only_the_status(tmp_path):
    store = RecordStore(tmp_path / "db", Retention(result_cap=100))
    big = store.make_record("big", "s", 0, 0.0, 0.0, 0, b"h", [b"y" * 1000])
    store.add(big)
    store.flush()
    assert store.get("big").frames is None
    store.close()


def test_clear_session_forgets_only_that_session(tmp_path):
    store = RecordStore(tmp_path / "db")
    for i in range(5):
        store.add(record(store, i, session="mine"))
    store.add(record(store, 9, session="theirs"))
    assert store.clear_session("mine") == 5
    assert store.get("t0") is None
    assert store.get("t9") is not None
    store.close()


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_locked_database_keeps_records_pending_and_writes_them_later(tmp_path):
    path = tmp_path / "db.sqlite3"
    clock = FakeClock()
    store = RecordStore(path, clock=clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    for i in range(3):
        store.add(record(store, i))
    assert store.flush() == 0  # at once, without waiting on the lock
    assert "locked" in store.stats()["store_error"]
    assert store.stats()["unwritten"] == 3
    assert store.get("t1").frames == [b"x" * 10]  # still served from memory
    other.execute("ROLLBACK")
    other.close()
    assert store.flush() == 0  # too soon to try again
    clock.now += 60
    assert store.flush() == 3
    assert "store_error" not in store.stats()
    store.close()
    again = RecordStore(path)
    assert [again.get(f"t{i}") is not None for i in range(3)] == [True] * 3
    again.close()


def test_a_disk_that_keeps_failing_gives_up_only_past_the_budget_and_says_which(tmp_path):
    clock = FakeClock()
    store = RecordStore(tmp_path / "db", Retention(pending_records=5, cache_records=2), clock)
    store._db.set_authorizer(  # every write refused, as by a read-only disk
        lambda action, *_: sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_INSERT else 0
    )
    for i in range(8):
        store.add(record(store, i))
        clock.now += 60
        store.flush()
    stats = store.stats()
    assert "not authorized" in stats["store_error"]
    assert stats["unwritten"] == 5
    assert list(store.lost) == ["t0", "t1", "t2"]  # the oldest, only past the budget
    assert store.get("t3") is not None  # pending: still readable though out of the cache
    store.close()  # never raises


def test_a_database_that_cannot_be_opened_is_replaced_by_memory(tmp_path):
    (tmp_path / "db").mkdir()  # a folder where the file should be
    store = RecordStore(tmp_path / "db")
    assert "open failed" in store.stats()["store_error"]
    store.add(record(store, 1))
    store.flush()
    assert store.get("t1") is not None
    assert "open failed" in store.stats()["store_error"]  # said for as long as it lasts
    store.close()
