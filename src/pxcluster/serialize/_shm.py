"""Serialize layer: big buffers through shared memory between processes on one host.

Relaying a 100 MB array through the controller moves it over two sockets; on one host the
sender can instead copy it once into a private POSIX shared-memory segment and send only the
segment's name. The receiver maps it copy-on-write (no copy, and its array stays writable)
and the name is unlinked as soon as every receiver has mapped it, so the memory goes away
with the last array that uses it.

Segments live in ``/dev/shm`` with mode 0600 and are named
``pxshm-<creator pid>-<n>-<64 random bits>``, so segments left by a process that died can
be swept (``sweep_stale``), and nobody can guess a name to create before us (a name that
exists already is skipped for another; a segment that cannot be made at all leaves its
frame on the sockets). Where ``/dev/shm`` is
missing (not Linux), ``available()`` is False and everything travels over the sockets.
"""

from __future__ import annotations

import atexit
import itertools
import mmap
import os
import queue
import secrets
import socket
import sys
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

from pxcluster._buffers import Buffer

#: Buffers at least this big go through shared memory when sender and receiver share a host.
SHM_THRESHOLD = 1 << 20
_DIR = Path("/dev/shm")
_PREFIX = "pxshm-"
_counter = itertools.count()


def available() -> bool:
    """True where POSIX shared memory is usable as files in ``/dev/shm``."""
    return _DIR.is_dir() and os.access(_DIR, os.W_OK)


def host_key() -> str:
    """Identifies this process's shared memory: equal keys mean a segment one side makes in
    ``/dev/shm`` is the other side's too.

    Hostname and boot id alone are not enough: a container or a namespace "host" keeps the
    machine's boot id and may keep its hostname while mounting a ``/dev/shm`` of its own,
    where the other side's segments do not exist. So the key also names the filesystem
    that ``/dev/shm`` is (its device number, unique per mounted tmpfs within one boot).
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    try:
        shm = _DIR.stat()
        fs = f"{shm.st_dev}:{shm.st_ino}"
    except OSError:
        fs = "none"
    return f"{socket.gethostname()}/{boot}/{fs}"


def export_frames(frames: Sequence[Buffer]) -> tuple[list[Buffer], list[int], list[str]]:
    """Move big frames into new segments.

    Returns:
        the frames with each big one replaced by its segment's name (as bytes), the indexes
        replaced, and the segment names (the sender unlinks them once delivered).
    """
    out: list[Buffer] = list(frames)
    indexes: list[int] = []
    names: list[str] = []
    if not available():
        return out, indexes, names
    for index, frame in enumerate(frames):
        view = memoryview(frame)
        if view.nbytes < SHM_THRESHOLD:
            continue
        try:
            name, fd = _new_segment()
        except OSError:
            continue  # no room in /dev/shm (or no way to name one): this frame goes by socket
        try:
            data = view.cast("B") if view.format != "B" or view.ndim != 1 else view
            written = 0
            while written < data.nbytes:  # one kernel copy into the segment's pages
                written += os.write(fd, data[written:])
        except BaseException:
            os.close(fd)
            unlink([name])
            raise
        os.close(fd)
        out[index] = name.encode()
        indexes.append(index)
        names.append(name)
    return out, indexes, names


def _new_segment() -> tuple[str, int]:
    """Create a segment under a fresh unguessable name; returns its name and an open fd.

    Raises:
        OSError: it cannot be made (no space, or every name tried exists: someone is
            pre-creating names).
    """
    for _ in range(8):
        name = f"{_PREFIX}{os.getpid()}-{next(_counter)}-{secrets.token_hex(8)}"
        try:
            return name, os.open(_DIR / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            continue
    raise OSError("no free shared-memory segment name after 8 tries")


def create_segment(nbytes: int) -> str:
    """A new segment of ``nbytes`` (zero pages until written), for others to write into.

    Raises:
        OSError: it cannot be made (no space in ``/dev/shm``, say).
    """
    name, fd = _new_segment()
    try:
        os.ftruncate(fd, nbytes)
    except BaseException:
        os.close(fd)
        unlink([name])
        raise
    os.close(fd)
    return name


def write_segment(name: str, offset: int, data: Buffer) -> int:
    """Write ``data`` into segment ``name`` at ``offset`` (one kernel copy); returns bytes.

    Raises:
        ValueError: ``name`` is not a segment name, or the data does not fit there.
        OSError: the segment is gone.
    """
    _check_name(name)
    view = memoryview(data)
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    fd = os.open(_DIR / name, os.O_WRONLY)
    try:
        size = os.fstat(fd).st_size
        if offset < 0 or offset + view.nbytes > size:
            raise ValueError(
                f"{view.nbytes} bytes at offset {offset} do not fit segment {name} ({size} bytes)"
            )
        written = 0
        while written < view.nbytes:
            written += os.pwrite(fd, view[written:], offset + written)
    finally:
        os.close(fd)
    return written


def _check_name(name: str) -> None:
    if not name.startswith(_PREFIX) or "/" in name or len(name) > 64:
        raise ValueError(f"not a shared-memory segment name: {name[:64]!r}")


def import_frames(
    frames: Sequence[Buffer], indexes: Sequence[int], unlink_after: bool
) -> list[Buffer]:
    """Replace the named frames by copy-on-write mappings of their segments.

    ``unlink_after``: this receiver is the segment's last user, so its name goes once the
    mapping does, in a background thread: freeing a 100 MB segment's pages takes ~15 ms,
    which whoever drops the last array over it need not wait for.

    Raises:
        ValueError: an index or a name is not one this module made.
        OSError: a segment is gone or unreadable.
    """
    out: list[Buffer] = list(frames)
    for index in indexes:
        name = bytes(frames[index]).decode("ascii", "replace")
        _check_name(name)
        path = _DIR / name
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            mapped = mmap.mmap(
                fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        finally:
            os.close(fd)
        if unlink_after:
            weakref.finalize(mapped, _unlink_soon, name)
        out[index] = memoryview(mapped)
    return out


_unlinker: queue.SimpleQueue[str] | None = None
_unlinker_lock = threading.Lock()
_exiting = False  # set at exit: from then on names are unlinked at once


def _unlink_soon(name: str) -> None:
    """Unlink segment ``name`` in the background (at once while the interpreter exits)."""
    global _unlinker
    if _exiting or sys.is_finalizing():
        unlink([name])
        return
    with _unlinker_lock:
        if _unlinker is None:
            _unlinker = queue.SimpleQueue()
            thread = threading.Thread(
                target=_unlink_forever, args=(_unlinker,), name="pxcluster-shm-free", daemon=True
            )
            thread.start()
            atexit.register(_unlink_queued, _unlinker)
    _unlinker.put(name)


def _unlink_forever(names: queue.SimpleQueue[str]) -> None:
    while True:
        unlink([names.get()])


def _unlink_queued(names: queue.SimpleQueue[str]) -> None:
    """At exit: unlink what the background thread has not got to yet (and, through
    ``_exiting``, what the mappings still alive then leave when they go)."""
    global _exiting
    _exiting = True
    while True:
        try:
            unlink([names.get_nowait()])
        except queue.Empty:
            return


def unlink(names: Sequence[str]) -> None:
    """Remove segments (their memory lives on in the mappings that still use it)."""
    for name in names:
        (_DIR / name).unlink(missing_ok=True)


def sweep_stale() -> int:
    """Remove segments whose creating process is gone; returns how many."""
    if not available():
        return 0
    removed = 0
    for path in _DIR.glob(f"{_PREFIX}*"):
        try:
            pid = int(path.name[len(_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue  # its creator is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's process: not ours to judge
        path.unlink(missing_ok=True)
        removed += 1
    return removed
