"""Tiny-model training tests run single-threaded: on a shared, oversubscribed CPU two spinning
OpenMP threads make 64-dim matmuls ~10x slower than one thread (measured: 2.0 ms vs 0.17 ms).
Integration tests train real models, where one thread halves the speed, so they keep every core:
CI once ran the e5 recipe on one thread and hit its hour's timeout."""

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
