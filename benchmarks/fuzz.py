"""Fuzz every controller port with real sockets: bad frames, bad headers, wrong fields, replays.

Run: ``python benchmarks/fuzz.py [MESSAGES_PER_PORT]`` (default 100,000). Starts its own
2-engine cluster, sends that many hostile messages to each of the client, engine and
heartbeat ports (random frames, truncated and oversized headers, every field of every
message type with wrong types and values, Unicode digits in ids, valid signatures with
either key, replays of old and new messages), then checks: the controller is alive and
answers, no engine was declared dead or faked in, no code the fuzz sent ran, and the
controller's memory (RSS) after the fuzz against its idle size. Prints one line per port
and a summary; exits non-zero if any check failed.

``hostile_messages`` is also used, with a small count, by ``tests/integration/test_fuzz_ports.py``.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

from pxcluster import Cluster
from pxcluster.wire import CONTENT, DELIMITER, Message, MsgType, Signer, encode, pack_batch

#: What a fuzzed message puts in place of a field's value.
WRONG_VALUES: list[Any] = [
    None,
    True,
    -1,
    2**63,
    -(2**63),
    1.5,
    float("nan"),
    "",
    "x" * 5000,
    "\udcff",
    b"\x00\xff",
    [],
    [1, "a", None],
    {},
    {"a": {"b": [1]}},
    "\u00b2",
    "\u0663",
]
#: Counters that str.isdigit() accepts and int() may refuse (the bug that once killed it).
UNICODE_DIGITS = ["\u00b2", "\u0663", "\uff11", "1\u00b9", "\u07c0"]
PWN = "import os; os.environ['PX_FUZZ_RAN'] = '1'; pwned = 1"


def _session() -> str:
    return f"fz{uuid.uuid4().hex[:10]}"


def _ids(rng: random.Random) -> Iterator[str]:
    """Message ids: mostly well formed, some with Unicode digits or no counter at all."""
    session, n = _session(), 0
    while True:
        n += 1
        pick = rng.random()
        if pick < 0.7:
            yield f"{session}-{n}"
        elif pick < 0.8:
            yield f"{session}-{rng.choice(UNICODE_DIGITS)}"
        elif pick < 0.9:
            yield rng.choice(["", "-", "x-", "-1", "a" * 300, f"{session}-{'9' * 30}"])
        else:
            yield f"{session}-{rng.randrange(1, max(2, n))}"  # an old counter: a replay


def _wrong_content(rng: random.Random, kind: MsgType) -> dict[str, Any]:
    """Content for ``kind`` with one or more declared fields given a wrong value."""
    fields = list(getattr(CONTENT[kind], "__annotations__", {})) or ["code", "id", "names"]
    content: dict[str, Any] = {}
    for name in rng.sample(fields, k=min(len(fields), rng.randint(1, 3))):
        content[name] = rng.choice(WRONG_VALUES)
    if rng.random() < 0.3 and "code" not in content:
        content["code"] = PWN  # a valid-looking payload beside the wrong field
    return content


#: Types a fuzzed message may have. SHUTDOWN and RESET are left out: a well-formed one is a
#: key holder's right (stop the controller, clear a namespace), not a fault to survive.
KINDS = [t for t in MsgType if t not in (MsgType.SHUTDOWN, MsgType.RESET)]


def _header(rng: random.Random, ids: Iterator[str], engine_ids: list[int]) -> Any:
    kind = rng.choice(KINDS)
    head: dict[str, Any] = {"t": int(kind), "i": next(ids), "ts": time.time()}
    pick = rng.random()
    if pick < 0.5:
        head["c"] = _wrong_content(rng, kind)
    elif pick < 0.6:
        head["c"] = rng.choice(WRONG_VALUES)
    if rng.random() < 0.5:
        head["g"] = rng.choice([engine_ids, [999], [True], "all", None, [-1], [2**40]])
    for key in rng.sample(["p", "e", "s", "n", "b", "d", "ts", "t"], k=rng.randint(0, 3)):
        head[key] = rng.choice(WRONG_VALUES)
    if rng.random() < 0.05:
        head = rng.choice([[1, 2, 3], "header", 5, None])
    return head


def _pack(head: Any) -> bytes:
    try:
        return msgpack.packb(head, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError):
        return b"\xc1"  # what msgpack cannot carry (a lone surrogate): a bad header instead


def hostile_messages(
    count: int, keys: list[bytes], engine_ids: list[int], seed: int = 0
) -> Iterator[list[bytes]]:
    """``count`` hostile multipart messages (without routing frames), mixed kinds.

    ``keys``: signing keys to use for the signed ones (a port's own key and the other).
    """
    rng = random.Random(seed)
    ids = _ids(rng)
    sent: list[list[bytes]] = []
    good_signer = Signer(keys[0])
    for index in range(count):
        pick = rng.random()
        if pick < 0.15:  # random frames
            frames = [
                rng.randbytes(rng.choice([0, 1, 8, 64, 300])) for _ in range(rng.randint(1, 6))
            ]
        elif pick < 0.25:  # the right shape, garbage inside
            frames = [DELIMITER, rng.randbytes(64), rng.randbytes(rng.randint(0, 400))]
        elif pick < 0.35:  # truncated or oversized signed header
            header = _pack(_header(rng, ids, engine_ids))
            header = (
                header[: rng.randint(0, len(header))]
                if rng.random() < 0.5
                else (header + rng.randbytes(rng.choice([1, 100, 70_000])))
            )
            frames = [DELIMITER, good_signer.sign([header]), header]
        elif pick < 0.45 and sent:  # a replay of something already sent
            frames = rng.choice(sent)
        elif pick < 0.5:  # a well-formed message signed with the other port's key
            msg = Message(MsgType.EXECUTE, next(ids), {"code": PWN}, targets=engine_ids)
            frames = [bytes(f) for f in encode(msg, Signer(keys[-1]))]
        elif pick < 0.55:  # a signed BATCH whose entries are hostile headers and payloads
            entries = [
                (_pack(_header(rng, ids, engine_ids)), [rng.randbytes(rng.randint(0, 40))])
                for _ in range(rng.randint(1, 5))
            ]
            header, payload = pack_batch(next(ids), entries)
            frames = [DELIMITER, good_signer.sign([header]), header, *map(bytes, payload)]
        else:  # signed with this port's key: wrong fields, wrong values, Unicode digits
            header = _pack(_header(rng, ids, engine_ids))
            frames = [DELIMITER, good_signer.sign([header]), header]
            if rng.random() < 0.2:
                frames.append(rng.randbytes(rng.randint(0, 100)))
        if index % 97 == 0 and len(sent) < 200:
            sent.append(frames)
        yield frames


def controller_rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def fuzz_ports(cluster: Cluster, count: int, seed: int = 0) -> dict[str, Any]:
    """Send ``count`` hostile messages to each port of ``cluster``; returns the figures."""
    import json

    client = json.loads(cluster.paths.client_file.read_text())
    engine = json.loads(cluster.paths.engine_file.read_text())
    ckey, ekey = client["key"].encode(), engine["key"].encode()
    host = engine["url"].rsplit(":", 1)[0]
    mec = cluster.client()
    ids = mec.get_ids()
    pid = cluster.controller_pid
    assert pid is not None
    idle = controller_rss(pid)
    ports = {
        "client": (client["url"], [ckey, ekey]),
        "engine": (engine["url"], [ekey, ckey]),
        "heartbeat": (f"{host}:{engine['hb_pong_port']}", [ekey, ckey]),
    }
    ctx = zmq.Context()
    figures: dict[str, Any] = {"idle_rss": idle, "ports": {}}
    try:
        for port, (url, keys) in ports.items():
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(url)
            began = time.perf_counter()
            for frames in hostile_messages(count, keys, ids, seed):
                sock.send_multipart(frames)
                while sock.poll(0):
                    sock.recv_multipart()  # answers to the client port's refusals
            alive = cluster.controller_alive()
            # a good request after the flood: answered only once the flood was read
            answer = mec.execute("6 * 7", targets=ids, timeout=600)
            seconds = time.perf_counter() - began
            sock.close(linger=0)
            figures["ports"][port] = {
                "messages": count,
                "seconds": round(seconds, 1),
                "alive": alive and cluster.controller_alive(),
                "answered": [r["display"] for r in answer] == ["42"] * len(ids),
                "rss_after": controller_rss(pid),
            }
        keys_after = mec.keys(targets=ids, timeout=60)
        figures["code_ran"] = any("pwned" in k for k in keys_after)
        # the engine key may register engines (by design): none of ours may be lost
        figures["engines_same"] = set(ids) <= set(mec.get_ids())
        figures["rss_after"] = controller_rss(pid)
    finally:
        ctx.destroy(linger=0)
    return figures


def main(count: int) -> int:
    profile = Path(tempfile.mkdtemp()) / "p"
    with Cluster(n=2, profile="fuzz", profile_dir=profile) as cluster:
        figures = fuzz_ports(cluster, count)
    ok = not figures["code_ran"] and figures["engines_same"]
    for port, row in figures["ports"].items():
        ok = ok and row["alive"] and row["answered"]
        print(
            f"{port:<10} {row['messages']:>8} messages in {row['seconds']:>7.1f} s: controller "
            f"{'alive' if row['alive'] else 'DEAD'}, good request "
            f"{'answered' if row['answered'] else 'NOT answered'}, RSS {row['rss_after'] >> 20} MiB"
        )
    ratio = figures["rss_after"] / figures["idle_rss"]
    ok = ok and ratio <= 2.0
    print(
        f"controller RSS idle {figures['idle_rss'] >> 20} MiB, after {figures['rss_after'] >> 20} "
        f"MiB ({ratio:.2f}x); fuzz code ran: {figures['code_ran']}; engines unchanged: "
        f"{figures['engines_same']}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
