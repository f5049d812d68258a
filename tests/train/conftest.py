"""Tiny-model training tests run single-threaded: on a shared, oversubscribed CPU two spinning
OpenMP threads make 64-dim matmuls many times slower than one thread (docs/benchmarks.md).
Integration tests train real models, where one thread halves the speed, so they keep the
threads they were given: every core in the recipe tier (CI once ran the e5 recipe on one
thread and hit its hour's timeout), one per xdist worker in the rest of `make test`
(tests/conftest.py)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread(request):
    if request.node.get_closest_marker("integration"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
