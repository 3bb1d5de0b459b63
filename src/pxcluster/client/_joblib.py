"""Client layer: a joblib backend named ``pxcluster`` that runs joblib's batches as tasks.

``register_joblib_backend()`` registers it; then ::

    with joblib.parallel_config(backend="pxcluster"):
        joblib.Parallel()(joblib.delayed(f)(x) for x in range(100))

(and scikit-learn's ``n_jobs``) run on the engines, load-balanced. joblib is imported only
here, when a backend is registered; it must be installed on the engines too, since joblib's
batches unpickle there.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pxcluster.client.task import TaskClient


def register_joblib_backend(
    name: str = "pxcluster",
    make_default: bool = False,
    *,
    client: TaskClient | None = None,
    profile: str = "default",
    profile_dir: str | Path | None = None,
) -> None:
    """Register a joblib backend that runs on this cluster's engines.

    Args:
        name: the backend's name in ``joblib.parallel_config(backend=name)``.
        make_default: also make it joblib's default backend.
        client: the TaskClient to use; by default one is connected (to ``profile``'s
            cluster) the first time the backend is used.

    Raises:
        ImportError: joblib is not installed (``pip install joblib``).
    """
    try:
        import joblib  # type: ignore[import-untyped]
        from joblib._parallel_backends import (  # type: ignore[import-untyped]
            ParallelBackendBase,
        )
    except ImportError as exc:
        raise ImportError("the joblib backend needs joblib: pip install joblib") from exc

    shared: list[TaskClient] = [client] if client is not None else []

    def task_client() -> TaskClient:
        if not shared:
            from pxcluster.client.task import TaskClient

            shared.append(TaskClient(profile=profile, profile_dir=profile_dir))
        return shared[0]

    class PxclusterBackend(ParallelBackendBase):  # type: ignore[misc]
        """joblib's batches as pxcluster tasks (each batch one task)."""

        supports_retrieve_callback = True
        supports_timeout = True
        default_n_jobs = -1

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._executor: Any = None

        def effective_n_jobs(self, n_jobs: int | None) -> int:
            engines = max(1, len(task_client()._core.engines))
            if n_jobs is None or n_jobs < 0:
                return engines
            return min(n_jobs, engines) if n_jobs else 1

        def configure(self, n_jobs: int = 1, parallel: Any = None, **kwargs: Any) -> int:
            self.parallel = parallel
            if self._executor is None:
                self._executor = task_client().executor()
            return self.effective_n_jobs(n_jobs)

        def submit(
            self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None
        ) -> concurrent.futures.Future[Any]:
            future: concurrent.futures.Future[Any] = self._executor.submit(func)
            if callback is not None:
                future.add_done_callback(callback)
            return future

        def retrieve_result_callback(self, out: concurrent.futures.Future[Any]) -> Any:
            return out.result()

        def retrieve_result(
            self, out: concurrent.futures.Future[Any], timeout: float | None = None
        ) -> Any:
            return out.result(timeout)

        def abort_everything(self, ensure_ready: bool = True) -> None:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

        def terminate(self) -> None:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    joblib.register_parallel_backend(name, PxclusterBackend, make_default=make_default)
