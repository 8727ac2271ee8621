import pytest
import torch


@pytest.fixture
def generator():
    """A fresh CPU generator with a fixed seed: tests never touch global RNG state."""
    return torch.Generator().manual_seed(1234)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True, scope="session")
def _hermetic_cache_dir(tmp_path_factory):
    """Quantile tables that the tests build go to a temporary folder, not the user's ~/.cache."""
    import os

    previous = os.environ.get("DISCOGRAD_CACHE_DIR")
    os.environ["DISCOGRAD_CACHE_DIR"] = str(tmp_path_factory.mktemp("discograd-cache"))
    yield
    if previous is None:
        os.environ.pop("DISCOGRAD_CACHE_DIR", None)
    else:
        os.environ["DISCOGRAD_CACHE_DIR"] = previous
