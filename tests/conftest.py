"""Shared test fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    """Tests use one intra-op thread: results do not depend on the machine's core count, and
    runs compared bitwise (tests/test_checkpoint.py) use the same kernels. Session-scoped, so it
    is in force before module-scoped fixtures train anything."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
