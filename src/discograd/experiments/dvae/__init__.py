r"""Discrete VAE with categorical and k-subset latents (Niepert et al., NeurIPS 2021, Section 5.3).

(README section: see ``docs/dvae.md`` for the measured numbers and the command that regenerates them.)

An MLP encoder maps a binarised image to logits θ ``[groups, n]``; a discrete latent z is drawn with one
of the estimators below; an MLP decoder gives Bernoulli pixel logits. The training loss is the
reconstruction BCE plus the KL to the uniform prior (exact by default; ``train_kl="proxy"`` uses the
original code's categorical proxy).

- ``cat_*`` methods: 20 categorical variables of 10 categories: ``cat_gumbel_softmax`` (relaxed),
  ``cat_gumbel_softmax_hard`` (straight-through Gumbel-softmax), ``cat_straight_through`` (Argmax + Gumbel
  noise, identity backward), ``cat_imle`` (Argmax, Gumbel noise), ``cat_score_function`` (REINFORCE,
  leave-one-out baseline).
- ``subset_*`` methods: 20 groups of 10-of-20 subsets: ``subset_imle`` (SumOfGamma(k=10) noise),
  ``subset_aimle`` (AdaptiveTarget), ``subset_simple`` (SIMPLE), ``subset_straight_through`` (SoG noise),
  ``subset_relaxed_topk`` (SoftSub).

Evaluation reports the **exact** negative ELBO: its KL term exactly (``Σ p log p + log n`` for categoricals;
``⟨θ, μ(θ)⟩ − log Z(θ) + log C(n, k)`` by the k-subset DP), its reconstruction term by Monte Carlo with
exact samples of q; and, labelled as a proxy, ``reconstruction + Σ_g KL(softmax(θ_g)‖uniform(n))``, the
loss the original I-MLE code reported for k-subset latents.

Command line (wired by :func:`add_dvae_commands` / :func:`run_dvae_command`)::

    discograd dvae train --method subset_imle --seed 0
    discograd dvae compare --methods cat_gumbel_softmax cat_imle subset_imle --seeds 0 1 2
"""

from .commands import add_dvae_commands, run_dvae_command
from .data import (
    BinaryImages,
    load_digits_binary,
    load_mnist_binary,
    read_idx,
    write_idx,
)
from .model import (
    CATEGORICAL_METHODS,
    METHODS,
    SUBSET_METHODS,
    DiscreteVAE,
    EstimatorSettings,
    build_estimator,
    categorical_kl,
    ksubset_kl,
    proxy_kl,
)
from .train import DVAEConfig, format_compare, load_data, run_compare, run_dvae

__all__ = [
    "CATEGORICAL_METHODS",
    "METHODS",
    "SUBSET_METHODS",
    "BinaryImages",
    "DVAEConfig",
    "DiscreteVAE",
    "EstimatorSettings",
    "add_dvae_commands",
    "build_estimator",
    "categorical_kl",
    "format_compare",
    "ksubset_kl",
    "load_data",
    "load_digits_binary",
    "load_mnist_binary",
    "proxy_kl",
    "read_idx",
    "run_compare",
    "run_dvae",
    "run_dvae_command",
    "write_idx",
]
