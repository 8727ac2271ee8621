r"""Discrete VAE with categorical and k-subset latents (Niepert et al., NeurIPS 2021, Section 5.3).

(README section: see ``docs/dvae.md`` for the measured numbers, the settings table against the original
code and the command that regenerates them.)

An MLP encoder maps a binarised image to logits θ ``[groups, n]``; a discrete latent z is drawn with one
of the estimators below; an MLP decoder gives Bernoulli pixel logits. The defaults are the original code's
(tf-imle DVAE notebook, torch-adaptive-imle ``cli/vae-cli.py``): 20 groups of 10-of-20 subsets,
Sum-of-Gamma κ = 10, τ = 10, λ = 10 on the batch-mean loss, encoder ``D-512-256-400`` and decoder
``400-256-512-D`` (a quarter of the widths on the 8 × 8 digits), Adam 1e-3, batch 100, 100 epochs, the
training loss = reconstruction + the categorical proxy KL; Gumbel-softmax on 20 categoricals of 20 with τ
annealed 1 → 0.5. Options: ``train_kl="exact"`` (the exact KL in training), ``loss_reduction="sum"``,
``hidden``, ``step_size``, ``sog_noise="tf_imle_rate"`` (the notebook's Gamma rate/scale mix-up).

- ``cat_*`` methods: categorical variables: ``cat_gumbel_softmax`` (relaxed), ``cat_gumbel_softmax_hard``
  (straight-through Gumbel-softmax), ``cat_straight_through`` (Argmax + Gumbel noise, identity backward),
  ``cat_imle`` (Argmax, Gumbel noise), ``cat_score_function`` (REINFORCE, leave-one-out baseline).
- ``subset_*`` methods: k-subsets: ``subset_imle`` (SumOfGamma(k=10) noise), ``subset_aimle``
  (AdaptiveTarget), ``subset_simple`` (SIMPLE), ``subset_straight_through`` (SoG noise),
  ``subset_relaxed_topk`` (SoftSub).

Every epoch reports both the **original code's test loss** (``original_loss``: reconstruction with z drawn
by the method's training sampler + the categorical proxy ``Σ_g KL(softmax(θ_g)‖uniform(n))``) and the
**exact negative ELBO** (``nelbo``: the KL exactly, ``⟨θ, μ(θ)⟩ − log Z(θ) + log C(n, k)`` by the k-subset DP,
the reconstruction by Monte Carlo with exact samples of q).

Command line (wired by :func:`add_dvae_commands` / :func:`run_dvae_command`)::

    discograd dvae train --method subset_imle --seed 0
    discograd dvae compare --methods subset_imle cat_gumbel_softmax subset_straight_through --seeds 0 1 2
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
    RateSumOfGamma,
    build_estimator,
    categorical_kl,
    ksubset_kl,
    proxy_kl,
)
from .train import (
    METRICS,
    DVAEConfig,
    annealed_temperature,
    default_hidden,
    format_compare,
    load_data,
    run_compare,
    run_dvae,
    training_loss,
)

__all__ = [
    "CATEGORICAL_METHODS",
    "METHODS",
    "METRICS",
    "SUBSET_METHODS",
    "BinaryImages",
    "DVAEConfig",
    "DiscreteVAE",
    "EstimatorSettings",
    "RateSumOfGamma",
    "add_dvae_commands",
    "annealed_temperature",
    "build_estimator",
    "categorical_kl",
    "default_hidden",
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
    "training_loss",
    "write_idx",
]
