"""Model tests run torch on one thread: tiny tensors gain nothing from more, and the test
machine's cores are shared, where oversubscribed threads make small ops many times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def single_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
