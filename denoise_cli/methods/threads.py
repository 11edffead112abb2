"""Work spread over threads of our own, with torch single-threaded inside, instead of over torch's OpenMP threads.

The command runs torch's OpenMP threads with passive waiting (see ``__main__``), so that several processes can share
the cores; but then each small operation pays for waking the threads it splits over, and on a 2-core Xeon that cost
everything the second core gave: the TV solver's iteration on 1024^2 RGB took 29 ms on two OpenMP threads as on one,
14 ms with a band of rows on each of two threads of ours; `denoise deblur --psf auto` on a 255^2 photo took 12.0 s
end to end on two OpenMP threads, 6.9 s on one, 5.1 s with its runs on two threads of ours; a ZS-N2N fit step on
256^2 took 18.3 ms on two OpenMP threads, 13.0 ms in two bands of rows on threads of ours; `denoise deblur` with a
known PSF on 12 MP RGB took 68 s with its tiles one after another on two OpenMP threads, 41 s with the tiles on two
threads of ours. Independent pieces of work (bands of rows, the blind estimate's runs, the deconvolution's tiles) go
to a :class:`TorchThreadPool` instead; no thread spins while it waits.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_this_thread = threading.local()  # .in_pool: the thread is one of a pool's


def _mark_in_pool() -> None:
    _this_thread.in_pool = True


class TorchThreadPool:
    """``count`` threads that run work with torch single-threaded (a context manager; with one thread the work
    runs on the calling thread, torch untouched).

    torch's thread count is one setting for the whole process: the first pool to open (of those open at once, as
    in ``serve``) sets it to 1 and the last to close sets it back.
    """

    _lock = threading.Lock()
    _open = 0  # pools open now
    _torch_threads = 0  # torch's thread count before the first of them opened

    def __init__(self, count: int, name: str = "denoise"):
        self.count = max(1, count)
        self._name = name
        self._pool: Optional[ThreadPoolExecutor] = None

    @staticmethod
    def threads(device: torch.device) -> int:
        """How many threads work on ``device`` should spread over: torch's thread count as it is outside the pools
        on the CPU; 1 on a pool's own thread (its work is already spread: the blind estimate's kernel choice
        deconvolves on such threads, and tiles spread again there would oversubscribe the cores) and elsewhere (a
        GPU runs each operation whole)."""
        if device.type != "cpu" or getattr(_this_thread, "in_pool", False):
            return 1
        with TorchThreadPool._lock:
            return TorchThreadPool._torch_threads if TorchThreadPool._open else torch.get_num_threads()

    def __enter__(self) -> "TorchThreadPool":
        if self.count > 1:
            with TorchThreadPool._lock:
                if TorchThreadPool._open == 0:
                    TorchThreadPool._torch_threads = torch.get_num_threads()
                    torch.set_num_threads(1)
                TorchThreadPool._open += 1
            self._pool = ThreadPoolExecutor(self.count, thread_name_prefix=self._name, initializer=_mark_in_pool)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            with TorchThreadPool._lock:
                TorchThreadPool._open -= 1
                if TorchThreadPool._open == 0:
                    torch.set_num_threads(TorchThreadPool._torch_threads)

    def map(self, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """work(item) for each item, on the pool's threads while it is open; the results in order."""
        if self._pool is None:
            return [work(item) for item in items]
        return list(self._pool.map(work, items))
