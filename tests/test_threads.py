"""TorchThreadPool: torch single-threaded inside, restored after, and an error stops the work still queued."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from denoise_cli.methods.threads import TorchThreadPool


def test_torch_runs_single_threaded_inside_and_is_restored_after():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with TorchThreadPool(2, "test") as pool:
            inside = pool.map(lambda _: (torch.get_num_threads(), threading.current_thread().name), range(4))
            assert TorchThreadPool.threads(torch.device("cpu")) == 2  # the count outside the pools
        assert {count for count, _ in inside} == {1} and all(name.startswith("test_") for _, name in inside)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_an_error_stops_the_work_still_queued():
    """A stopped job or Ctrl-C raises inside the work: what has not started is dropped (the executor's map cancels
    it), not run before the error goes on (the 12 MP deconvolution queues about a hundred tiles)."""
    ran = []

    def work(item: int) -> int:
        if item == 0:
            raise KeyboardInterrupt
        time.sleep(0.02)
        ran.append(item)
        return item

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with TorchThreadPool(2, "test") as pool:
            pool.map(work, range(200))
    assert len(ran) < 20 and time.perf_counter() - started < 2
