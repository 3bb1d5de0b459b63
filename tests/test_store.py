"""Controller layer: the SQLite record store of finished tasks."""

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


def test_result_over_the_cap_keeps_only_the_status(tmp_path):
    store = RecordStore(tmp_path / "db", Retention(result_cap=100))
    big = store.make_record("big", "s", 0, 0.0, 0.0, 0, b"h", [b"y" * 1000])
    store.add(big)
    store.flush()
    assert store.get("big").frames is None


def test_clear_session_forgets_only_that_session(tmp_path):
    store = RecordStore(tmp_path / "db")
    for i in range(5):
        store.add(record(store, i, session="mine"))
    store.add(record(store, 9, session="theirs"))
    assert store.clear_session("mine") == 5
    assert store.get("t0") is None
    assert store.get("t9") is not None
