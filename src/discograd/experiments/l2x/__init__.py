"""The learning-to-explain experiment (L2X; I-MLE paper, Section 5.2, Table 1).

- :mod:`.data`: the four synthetic tabular data sets of L2X, synthetic reviews with annotated spans and the
  BeerAdvocate loader;
- :mod:`.train`: the explainers, the k-subset methods, the metrics and :func:`run_l2x` (one run folder);
- :mod:`.compare`: methods × seeds (× k) → one table and one figure;
- :mod:`.analysis`: post-hoc analyses of finished runs (selected words, upstream gradients by group);
- :mod:`.commands`: ``discograd l2x train`` and ``discograd l2x compare``.
"""

from .data import (
    BEER_ASPECTS,
    RELEVANT_FEATURES,
    TABULAR_TASKS,
    L2XData,
    TabularSplit,
    TextSplit,
    generate_reviews,
    generate_tabular,
    halve,
    load_beer,
    read_annotations,
    read_embeddings,
    read_reviews,
)
from .train import (
    DEFAULT_K,
    IMLE_SETTINGS,
    METHODS,
    ORIGINAL_TEXT_SETTINGS,
    PAPER_TABLE1,
    TASKS,
    L2XConfig,
    best_epoch,
    build_selector,
    evaluate,
    median_ranks,
    methods_for,
    run_l2x,
    subset_precision,
    true_positive_rate,
)

__all__ = [
    "BEER_ASPECTS",
    "DEFAULT_K",
    "IMLE_SETTINGS",
    "METHODS",
    "ORIGINAL_TEXT_SETTINGS",
    "PAPER_TABLE1",
    "RELEVANT_FEATURES",
    "TABULAR_TASKS",
    "TASKS",
    "L2XConfig",
    "L2XData",
    "TabularSplit",
    "TextSplit",
    "best_epoch",
    "build_selector",
    "evaluate",
    "generate_reviews",
    "generate_tabular",
    "halve",
    "load_beer",
    "median_ranks",
    "methods_for",
    "read_annotations",
    "read_embeddings",
    "read_reviews",
    "run_l2x",
    "subset_precision",
    "true_positive_rate",
]
