"""Client layer: the 2006 kernel client (``InteractiveCluster``, ``RemoteKernel``,
``Scatter``, ``NotDefined``), built on the MultiEngineClient.

This is the interface of the first IPython kernel README, so that its transcript runs as
written (in Python 3 syntax)::

    from pxcluster.kernelclient import *
    ic = InteractiveCluster()
    ic.start()                          # the running cluster of the default profile
    ic.execute('a = 5'); ic.execute('c = 30', 0); ic[0].execute('d = 10')
    ic.push('a', 10); ic.pull('a')      # [10, 10]
    ic.pull('q')                        # [<NotDefined: q>, <NotDefined: q>]
    ic['a'] = Scatter(range(10)); ic.pull('a', flatten=True)
    ic.map('lambda x: x*x', range(10)); f = ic.parallelize('lambda x: x*x'); f(range(10))
    ic.reset(); ic.disconnect(); ic.execute('a = 5')   # reconnects by itself
    ic.kill()

Differences from 2006, where pxcluster works otherwise: kernels are the engines of one
controller, so ``start()`` connects to the controller (of a profile or a connection file)
rather than to each kernel's address, and a ``(host, port)`` given must be the controller's
client address; results come back to the caller, so ``notify()`` is accepted and does
nothing; and functions, not only strings, may be given to ``map`` and ``parallelize``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pxcluster._errors import CompositeError, RemoteError
from pxcluster.client._active import active_client, set_active
from pxcluster.client._partition import concatenate
from pxcluster.client.multiengine import MultiEngineClient

__all__ = ["InteractiveCluster", "NotDefined", "RemoteKernel", "Scatter"]

#: What ``%px`` prints before it runs a command for an InteractiveCluster (the seed's line).
PX_BANNER = "Executing command on cluster"

Targets = int | Sequence[int] | str


class NotDefined:
    """Stands for a name that is not defined on a kernel, in what ``pull`` returns."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<NotDefined: {self.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotDefined) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("NotDefined", self.name))


class Scatter:
    """A sequence to partition over the kernels when pushed (an MPI scatter).

    Args:
        seq: the sequence; each kernel gets one contiguous part.
        flatten: a part of one item is pushed as that item, not as a one-item list.
    """

    def __init__(self, seq: Iterable[Any], flatten: bool = False) -> None:
        self.seq = seq
        self.flatten = flatten

    def __repr__(self) -> str:
        return f"Scatter({self.seq!r}, {self.flatten!r})"


class InteractiveCluster:
    """The kernels (engines) of a running cluster, driven from IPython or a script.

    Args:
        profile: the profile whose running cluster to use.
        profile_dir: the profile folder, if not under ``~/.pxcluster``.
        connection_file: a client connection file instead of the profile's.
        timeout: seconds to wait for the controller when connecting, and at most for each
            call (None: calls wait as long as they take).
    """

    def __init__(
        self,
        profile: str = "default",
        *,
        profile_dir: str | Path | None = None,
        connection_file: str | Path | None = None,
        timeout: float | None = None,
    ) -> None:
        self.profile = profile
        self.profile_dir = profile_dir
        self.connection_file = connection_file
        self.timeout = timeout
        self._client: MultiEngineClient | None = None
        self._active = False
        self._results_address: tuple[str, int] | None = None

    # -- connecting ----------------------------------------------------------------------

    def start(self, addresses: Sequence[tuple[str, int]] | tuple[str, int] | None = None) -> bool:
        """Connect to the cluster's controller; True once connected.

        ``addresses`` (the seed's list of kernel addresses) may name the controller's
        client address, ``('127.0.0.1', port)``; pxcluster's kernels have no address of
        their own (they are reached through the controller).

        Raises:
            NoClusterRunning: the profile has no running cluster.
            ValueError: an address that is not the controller's.
        """
        client = self._connect()
        if addresses is not None:
            _check_addresses(addresses, client)
        return True

    def notify(self, address: tuple[str, int] | None = None) -> None:
        """Accepted for the seed's sake: results come straight back to this client, so no
        result gatherer needs to be told of them."""
        self._results_address = address

    def _connect(self) -> MultiEngineClient:
        if self._client is None:
            client = MultiEngineClient(
                self.connection_file,
                profile=self.profile,
                profile_dir=self.profile_dir,
                timeout=10.0 if self.timeout is None else self.timeout,
            )
            client.timeout = self.timeout
            client.px_banner = PX_BANNER
            for engine in client.ids:
                print(f"Connecting to kernel:  {engine} at {client._core.connection.url}")  # noqa: T201
            self._client = client
            if self._active:
                set_active(client)
        return self._client

    @property
    def client(self) -> MultiEngineClient:
        """The MultiEngineClient underneath (connecting again after ``disconnect()``)."""
        return self._connect()

    def disconnect(self) -> None:
        """Close the connection; the next call that needs the kernels reconnects."""
        client, self._client = self._client, None
        if client is not None:
            self._active = active_client() is client
            client.close()

    def activate(self) -> None:
        """Make ``%px`` and ``%autopx`` run on this cluster (when several exist)."""
        self._active = True
        self.client.activate()

    def get_ids(self) -> list[int]:
        """The kernels' ids."""
        return self.client.get_ids()

    def __len__(self) -> int:
        return len(self.client.ids)

    # -- code ----------------------------------------------------------------------------

    def execute(self, lines: str, targets: Targets = "all") -> None:
        """Run ``lines`` on the kernels (all, one id, or a list of ids). What they print is
        shown, in the seeds' layout; a failure raises CompositeError."""
        result = self.client.execute(lines, targets=_targets(targets), block=True)
        if any(e.get("stdout") or e.get("stderr") or e.get("display") for e in result):
            print(repr(result))  # noqa: T201

    def run(self, filename: str | Path, targets: Targets = "all") -> None:
        """Run a Python file (read here) on the kernels."""
        self.execute(Path(filename).read_text(), targets)

    # -- data ----------------------------------------------------------------------------

    def push(self, key: str, value: Any, targets: Targets = "all") -> None:
        """Set ``key`` to ``value`` on the kernels; a ``Scatter`` value is partitioned."""
        ids = _targets(targets)
        if isinstance(value, Scatter):
            self.client.scatter(key, value.seq, targets=ids, flatten=value.flatten, block=True)
        else:
            self.client.push({key: value}, targets=ids, block=True)

    def pull(self, key: str, targets: Targets = "all", flatten: bool = False) -> Any:
        """``key``'s value on each kernel (a list, in kernel order); ``NotDefined(key)``
        where it is not defined. ``flatten=True`` joins scattered parts into one list."""
        ids = self.client._resolve(_targets(targets), "pull")
        values = _pull_each(self.client, key, ids)
        if flatten:
            return concatenate([v for v in values if not isinstance(v, NotDefined)])
        return values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self.pull(key)
        return RemoteKernel(key, cluster=self)

    def __setitem__(self, key: str, value: Any) -> None:
        self.push(key, value)

    def keys(self, targets: Targets = "all") -> Any:
        """The names defined on each kernel."""
        return self.client.keys(targets=_targets(targets), block=True)

    # -- map -----------------------------------------------------------------------------

    def map(
        self, func: str | Callable[..., Any], seq: Iterable[Any], targets: Targets = "all"
    ) -> list[Any]:
        """``list(map(func, seq))`` with ``seq`` scattered over the kernels; ``func`` is a
        string evaluated on the kernels (``'lambda x: x*x'``, or a name defined there) or
        a function."""
        result: list[Any] = self.client.map(func, seq, targets=_targets(targets), block=True)
        return result

    def parallelize(self, func: str | Callable[..., Any], targets: Targets = "all") -> Any:
        """A function of a sequence that maps ``func`` over it on the kernels."""

        def parallel(seq: Iterable[Any]) -> list[Any]:
            return self.map(func, seq, targets)

        parallel.__doc__ = f"map {func!r} over a sequence on the kernels"
        return parallel

    # -- the kernels themselves ----------------------------------------------------------

    def reset(self, targets: Targets = "all") -> None:
        """Clear the kernels' namespaces."""
        self.client.reset(targets=_targets(targets), block=True)

    def kill(self, targets: Targets = "all") -> None:
        """Stop the kernels for good (the controller keeps running), then disconnect."""
        self.client.kill(targets=_targets(targets), block=True)
        if targets == "all":
            self.disconnect()

    def __repr__(self) -> str:
        if self._client is None:
            return "<InteractiveCluster: not connected>"
        url = self._client._core.connection.url
        return f"<InteractiveCluster {url}: kernels {self._client.ids}>"


class RemoteKernel:
    """One kernel (``ic[0]``): the InteractiveCluster's methods for that kernel alone,
    with one value instead of a list. ``push`` returns True, as in the seed.

    Args:
        engine_id: the kernel's id.
        cluster: the InteractiveCluster it belongs to (default: a new one, connected to
            the running cluster of the default profile).
    """

    def __init__(self, engine_id: int = 0, *, cluster: InteractiveCluster | None = None) -> None:
        if isinstance(engine_id, bool) or not isinstance(engine_id, int):
            raise TypeError(f"a kernel is chosen by its id (an int), not {engine_id!r}")
        self.cluster = cluster if cluster is not None else InteractiveCluster()
        ids = self.cluster.client.ids
        if engine_id < 0 and -engine_id <= len(ids):
            engine_id = ids[engine_id]
        self.cluster.client._resolve([engine_id], "RemoteKernel")  # an unknown id fails now
        self.engine_id = engine_id

    def execute(self, lines: str) -> None:
        self.cluster.execute(lines, self.engine_id)

    def push(self, key: str, value: Any) -> bool:
        self.cluster.push(key, value, self.engine_id)
        return True

    def pull(self, key: str) -> Any:
        return self.cluster.pull(key, self.engine_id)[0]

    def __getitem__(self, key: str) -> Any:
        return self.pull(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.push(key, value)

    def keys(self) -> list[str]:
        names: list[str] = self.cluster.client[self.engine_id].keys(block=True)
        return names

    def map(self, func: str | Callable[..., Any], seq: Iterable[Any]) -> list[Any]:
        return self.cluster.map(func, seq, self.engine_id)

    def reset(self) -> None:
        self.cluster.reset(self.engine_id)

    def kill(self) -> None:
        self.cluster.kill(self.engine_id)

    def __repr__(self) -> str:
        return f"<RemoteKernel {self.engine_id}>"


def _targets(targets: Targets) -> Any:
    if isinstance(targets, str) and targets != "all":
        raise ValueError(f"targets are 'all', a kernel id or a list of ids, not {targets!r}")
    return targets


def _pull_each(client: MultiEngineClient, key: str, ids: list[int]) -> list[Any]:
    """``key`` from each of ``ids`` in one request; if it failed somewhere, again one
    kernel at a time, so that kernels without ``key`` give NotDefined."""
    try:
        values: list[Any] = client.pull(key, targets=ids, block=True)
        return values
    except CompositeError:
        pass
    pending = [client[engine].pull(key, block=False) for engine in ids]
    out = []
    for each in pending:
        try:
            out.append(each.get_result(timeout=client.timeout))
        except CompositeError as exc:
            if not all(_is_name_error(e) for e in exc.elist):
                raise
            out.append(NotDefined(key))
    return out


def _is_name_error(error: BaseException) -> bool:
    return isinstance(error, RemoteError) and error.ename == "NameError"


def _check_addresses(
    addresses: Sequence[tuple[str, int]] | tuple[str, int], client: MultiEngineClient
) -> None:
    pairs: list[Any] = [addresses] if _is_pair(addresses) else list(addresses)
    url = client._core.connection.url
    match = re.fullmatch(r"tcp://([^:]+|\[[^\]]+\]):(\d+)", url)
    controller = (match.group(1), int(match.group(2))) if match else None
    local = {"127.0.0.1", "localhost", "::1"}
    for pair in pairs:
        if not _is_pair(pair):
            raise ValueError(f"an address is a (host, port) pair, not {pair!r}")
        host: str = pair[0]
        port: int = pair[1]
        same_host = controller is not None and (
            host == controller[0] or (host in local and controller[0] in local)
        )
        if not (same_host and controller is not None and port == controller[1]):
            raise ValueError(
                f"no kernel listens at {pair!r}: pxcluster's kernels are the engines of one "
                f"controller and are reached through it, at {url}. Call start() with no "
                "address (the profile's cluster), or with the controller's "
                f"{controller!r}; choose kernels by id (ic[0], targets=[0, 1])."
            )


def _is_pair(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )

