"""Shared test helpers (imported by test modules: pytest puts this folder on sys.path)."""


class FixedNoise:
    """A user noise object returning a given tensor (checks that any object with `sample` works)."""

    def __init__(self, eps):
        self.eps = eps

    def sample(self, shape, *, generator=None, device=None, dtype=None):
        assert tuple(shape) == tuple(self.eps.shape)
        return self.eps.to(device=device, dtype=dtype).clone()
