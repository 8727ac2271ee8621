"""Noise distributions for perturb-and-MAP.

Every noise object has ``sample(shape, *, generator=None, device=None, dtype=None)``; a user's own
object with that method works wherever discograd takes ``noise=``.

- :class:`Gumbel`: exact perturb-and-MAP for one-hot structures (Gumbel-max).
- :class:`SumOfGamma`: for structures with exactly ``k`` ones (Niepert et al., 2021, Theorem 1).
- :class:`Normal`: Gaussian noise, as in perturbed optimizers (Berthet et al., 2020).
"""

from .base import NoiseDistribution
from .gumbel import Gumbel, standard_gumbel
from .normal import Normal
from .sum_of_gamma import SumOfGamma

__all__ = ["NoiseDistribution", "Gumbel", "Normal", "SumOfGamma", "standard_gumbel"]
