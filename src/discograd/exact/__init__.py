"""Exact references for the constrained exponential family ``p(z; θ) ∝ exp(⟨z, θ⟩ / τ)``, ``z ∈ C``.

What tests and benchmarks compare every estimator against:

- k-subsets (``C`` = 0/1 vectors with exactly ``k`` ones over the last dimension), by an ``O(n·k)``
  log-space dynamic programme that is stable in float32 (:mod:`discograd.exact.ksubset`):
  :func:`topk_log_partition`, :func:`topk_marginals` (differentiable; its Jacobian is
  ``Cov(z) / τ``), :func:`topk_sample` (exact samples) and :func:`topk_log_prob`.
- any small feasible set listed as a ``[C, *event]`` tensor (:mod:`discograd.exact.enumeration`):
  :func:`enumeration_log_probs`, :func:`enumeration_marginals`, :func:`enumeration_expectation`
  (the exact gradient of ``E_p[L(z)]``), :func:`enumeration_sample`, and :func:`ksubset_states` to
  list all k-subsets.

References: Niepert et al., arXiv:2106.01798; Ahmed et al. (SIMPLE), arXiv:2210.01941.
"""

from .enumeration import (
    MAX_ENUMERATED_STATES,
    enumeration_expectation,
    enumeration_log_probs,
    enumeration_marginals,
    enumeration_sample,
    ksubset_states,
)
from .ksubset import topk_log_partition, topk_log_prob, topk_marginals, topk_sample

__all__ = [
    "MAX_ENUMERATED_STATES",
    "enumeration_expectation",
    "enumeration_log_probs",
    "enumeration_marginals",
    "enumeration_sample",
    "ksubset_states",
    "topk_log_partition",
    "topk_log_prob",
    "topk_marginals",
    "topk_sample",
]
