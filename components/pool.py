"""The one way the project starts worker processes: fresh interpreters, one OpenCV thread.

Every pool is ``spawn``, never ``fork``: a child forked while another thread of the parent
holds a lock (OpenCV's thread pool, a tqdm monitor, MLflow's or pytest's threads) can
deadlock before it runs a single task, which happened to the augment stage inside the test
suite. Each worker also drops OpenCV to one thread: the pool already uses every core, more
threads per worker would only thrash.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import cv2


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A ``spawn`` process pool of ``workers`` whose workers run ``initializer(*initargs)``
    (a module-level function: it is pickled) after setting OpenCV to one thread."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(initializer, initargs),
    )


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    cv2.setNumThreads(1)
    if initializer is not None:
        initializer(*initargs)
