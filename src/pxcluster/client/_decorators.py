"""Client layer: the decorators ipyparallel users reach for: ``remote``, ``parallel``,
``require`` and ``depend``.

``@mec.remote()`` and ``@mec.parallel()`` wrap a function so that calling it runs it on the
engines (``apply``, or one part of each sequence per engine). ``@require`` and ``@depend``
mark a function with a condition an engine must meet: a task (``MapTask``, ``tc.map``, an
executor) then runs only on engines that meet it (the condition becomes the task's
``depend`` predicate), and a MultiEngine ``apply`` imports what ``require`` names first.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pxcluster.client.multiengine import MultiEngineClient


class RemoteFunction:
    """``func`` called on the engines of a client or view (made by ``@mec.remote()``).

    Calling it is ``apply``: one result per engine (a view of one engine: its result).
    """

    def __init__(
        self, client: MultiEngineClient, func: Callable[..., Any], block: bool | None
    ) -> None:
        functools.update_wrapper(self, func)
        self.client = client
        self.func = func
        self.block = block

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.client._apply(self.func, args, kwargs, self.block)


class PartsFunction:
    """``func`` called once per engine on that engine's part of each sequence argument
    (made by ``@mec.parallel()``); the parts' results are joined in engine order: lists
    into one list, numpy arrays into one array. ``map=True``: ``func`` is applied to each
    item instead (``mec.map``)."""

    def __init__(
        self,
        client: MultiEngineClient,
        func: Callable[..., Any],
        block: bool | None,
        map: bool,
    ) -> None:
        functools.update_wrapper(self, func)
        self.client = client
        self.func = func
        self.block = block
        self.map = map

    def __call__(self, *sequences: Iterable[Any]) -> Any:
        if self.map:
            return self.client.map(self.func, *sequences, block=self.block)
        return self.client._apply_parts(self.func, sequences, self.block)

    def map_items(self, *sequences: Iterable[Any]) -> Any:
        """``func`` on each item (``mec.map``), whatever ``map`` says."""
        return self.client.map(self.func, *sequences, block=self.block)


class DependentFunction:
    """A function with a condition on the engine that runs it (``@require``, ``@depend``).

    Calling it checks the condition first (``require``: imports the modules into the
    function's globals, which on an engine are the engine's names) and raises
    ``UnmetDependency`` where it does not hold; tasks use ``predicate`` to choose engines.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        modules: Sequence[str] = (),
        condition: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None = None,
    ) -> None:
        functools.update_wrapper(self, func)
        self.func: Callable[..., Any] = func
        self.modules: list[str] = list(modules)
        self.conditions: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = (
            [condition] if condition else []
        )
        if isinstance(func, DependentFunction):  # stacked decorators add up
            self.func = func.func
            self.modules += func.modules
            self.conditions += func.conditions

    def holds(self) -> bool:
        """True where every module imports and every ``depend`` condition is true."""
        for name in self.modules:
            try:
                importlib.import_module(name)
            except ImportError:
                return False
        return all(check(*args, **kwargs) for check, args, kwargs in self.conditions)

    def predicate(self, properties: dict[str, Any]) -> bool:
        """A task's ``depend`` predicate: the condition, checked on the candidate engine."""
        return self.holds()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pxcluster._errors import UnmetDependency

        if not self.holds():
            raise UnmetDependency(
                f"{getattr(self.func, '__name__', 'the function')} needs "
                + ", ".join([*self.modules, *(c[0].__name__ for c in self.conditions)])
                + ", which this engine does not meet"
            )
        namespace = getattr(self.func, "__globals__", None)
        if isinstance(namespace, dict):
            for name in self.modules:  # `import a.b` binds `a`, as an import statement does
                importlib.import_module(name)
                top = name.partition(".")[0]
                namespace.setdefault(top, importlib.import_module(top))
        return self.func(*args, **kwargs)


def require(*modules: str | Any) -> Callable[[Callable[..., Any]], DependentFunction]:
    """Decorator: the function needs these modules (names, or modules imported here).

    As a task it runs only on engines where they import; called, it imports them into its
    globals (the engine's names) first, so the function body may use them without an
    import of its own.
    """
    names = [m if isinstance(m, str) else m.__name__ for m in modules]
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"require takes module names or modules, not {modules!r}")

    def decorate(func: Callable[..., Any]) -> DependentFunction:
        return DependentFunction(func, names)

    return decorate


def depend(
    check: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[[Callable[..., Any]], DependentFunction]:
    """Decorator: the function runs only on engines where ``check(*args, **kwargs)`` is true
    (``check`` runs on the engine; a task is refused by engines where it is false)."""
    if not callable(check):
        raise TypeError(f"depend needs a callable condition, not {check!r}")

    def decorate(func: Callable[..., Any]) -> DependentFunction:
        return DependentFunction(func, condition=(check, args, kwargs))

    return decorate


def task_predicate(func: Callable[..., Any]) -> Callable[[dict[str, Any]], bool] | None:
    """The ``depend`` predicate a task of ``func`` gets from ``@require``/``@depend``."""
    return func.predicate if isinstance(func, DependentFunction) else None
