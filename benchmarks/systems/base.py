"""Benchmarks: the small protocol every compared system implements.

One object per system drives one local cluster of ``n`` engines (workers) at a time. An
operation a system has no natural equivalent of raises ``NotAvailable`` with the reason, and
the table shows n/a. ``how`` names the API each operation uses, for the table and README.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar


class NotAvailable(Exception):
    """The system cannot do this operation (or is not installed here): reported as n/a."""


class System:
    """A system under test; every operation defaults to n/a."""

    name: ClassVar[str] = ""
    how: ClassVar[dict[str, str]] = {}

    def versions(self) -> dict[str, str]:
        """Versions of the packages this system runs on."""
        return {}

    # -- lifetime ----------------------------------------------------------------------------

    def start(self, n: int) -> None:
        """Start a local cluster of ``n`` engines and connect; return once all are ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the cluster and every process it started."""
        raise NotImplementedError

    def engine_count(self) -> int:
        """Engines (workers) connected now."""
        raise NotImplementedError

    def engine_pids(self) -> list[int]:
        """Process ids of the engines (workers), in engine order."""
        raise NotImplementedError

    def cli_commands(self, n: int, workdir: str) -> tuple[list[str], list[str]]:
        """Commands that start ``n`` engines (returning when ready) and stop them."""
        raise NotAvailable("no single command that starts a cluster and returns when ready")

    # -- workloads ---------------------------------------------------------------------------

    def call(self, func: Callable[[], Any]) -> Any:
        """Call ``func()`` on engine 0, blocking; returns its value.

        ``func`` ignores any positional arguments: a stand-in that has to pass one may.
        """
        raise NotAvailable("no remote call")

    def execute_one(self, code: str) -> None:
        """Run ``code`` in engine 0's namespace, blocking."""
        raise NotAvailable("no persistent namespace to execute code in")

    def execute_all(self, code: str) -> None:
        """Run ``code`` in every engine's namespace, blocking."""
        raise NotAvailable("no persistent namespace to execute code in")

    def submit_each(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        """Submit one load-balanced task per argument, then wait; returns the values in order."""
        raise NotAvailable("no load-balanced tasks")

    def task_map(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        """A load-balanced map of ``func`` over ``args``, one task per item, in one call;
        returns the values in order."""
        raise NotAvailable("no load-balanced map")

    def task_map_default(self, func: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        """The same map with the system's default chunking, where that is not one task per
        item (only pxcluster's is, so far)."""
        raise NotAvailable("its default is one task per item: the row above")

    def map_all(self, func: Callable[[Any], Any], seq: Sequence[Any]) -> list[Any]:
        """Map ``func`` over ``seq`` split across all engines; returns the values in order."""
        raise NotAvailable("no parallel map")

    def push(self, name: str, value: Any) -> None:
        """Send ``value`` to engine 0, to be kept there as ``name``."""
        raise NotAvailable("no push")

    def pull(self, name: str) -> Any:
        """Fetch what engine 0 keeps as ``name``."""
        raise NotAvailable("no pull")

    def scatter(self, name: str, array: Any) -> None:
        """Split ``array`` into one contiguous part per engine, kept there as ``name``."""
        raise NotAvailable("no scatter")

    def gather(self, name: str) -> Any:
        """Join the parts kept as ``name`` on the engines, in engine order."""
        raise NotAvailable("no gather")
