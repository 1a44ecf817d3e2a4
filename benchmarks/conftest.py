"""Benchmarks run on one torch thread: numbers then do not depend on the machine's core count or
on what else runs on the other cores, and they match the regression runs and tests/conftest.py."""

from __future__ import annotations

import pytest
import torch

BENCHMARK_THREADS = 1


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(BENCHMARK_THREADS)
    yield
    torch.set_num_threads(threads)
