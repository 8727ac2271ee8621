import pytest
import torch


@pytest.fixture
def generator():
    """A fresh CPU generator with a fixed seed: tests never touch global RNG state."""
    return torch.Generator().manual_seed(1234)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
