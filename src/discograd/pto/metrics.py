r"""Regret over a data set in PyEPO's normalisation (``pyepo.metric.regret``).

Two names, two quantities; do not confuse them with the per-instance metrics of :mod:`discograd.metrics`:

- :func:`batch_regret` (tensors in) and :func:`dataset_regret` (a model and a ``DataLoader`` in) return, by
  default, PyEPO's **ratio of sums** over the instances

  .. math::

      \text{regret} = \frac{\sum_i \big(c_i^\top w(\hat c_i) - z^*_i\big)}{\sum_i |z^*_i| + 10^{-8}}
      \quad (\texttt{sense="min"}; \text{ for } \texttt{"max"} \text{ the gap is } z^*_i - c_i^\top w(\hat c_i)),

  the number PyEPO's papers and notebooks report (often as a percentage).
- :func:`discograd.metrics.normalized_regret` is the regret of **each instance divided by its own**
  :math:`|z^*_i|` (a tensor of per-instance ratios, in the maximisation convention ``θ = -c``). Its mean is
  not the number above: the ratio of sums weights instances by :math:`|z^*_i|`, the mean of ratios does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._validation import check_finite
from .dataset import _solve_labels, check_sense

__all__ = ["PYEPO_EPS", "REGRET_REDUCTIONS", "batch_regret", "dataset_regret"]

#: ``reduction`` values: PyEPO's ratio of sums (default), the sum, the mean, or the per-instance regrets
REGRET_REDUCTIONS = ("normalized", "sum", "mean", "none")

#: PyEPO adds this to the denominator of the normalised regret (``pyepo/utils.py``, ``_EPS``)
PYEPO_EPS = 1e-8


def _check_reduction(reduction: object) -> str:
    if reduction not in REGRET_REDUCTIONS:
        raise ValueError(f"reduction must be one of {REGRET_REDUCTIONS}; got {reduction!r}")
    return reduction  # type: ignore[return-value]


def _check_costs(value: object, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {value.dtype}")
    if value.dim() != 2:
        raise ValueError(f"{name} must have shape [B, d] (one vector per instance); got shape {tuple(value.shape)}")
    check_finite(value, name)
    return value


def _instance_regrets(pred_costs: Tensor, true_costs: Tensor, true_objs: Tensor, solver: Callable[..., Tensor],
                      sense: str, pred_name: str = "pred_costs") -> tuple[Tensor, Tensor]:
    """Per-instance regrets ``[B]`` and the true objectives ``[B]`` (float64, on ``pred_costs``' device)."""
    sense = check_sense(sense)
    pred_costs = _check_costs(pred_costs, pred_name)
    true_costs = _check_costs(true_costs, "true_costs")
    if pred_costs.shape != true_costs.shape:
        raise ValueError(f"{pred_name} and true_costs must have the same shape [B, d]; got {tuple(pred_costs.shape)} "
                         f"and {tuple(true_costs.shape)}")
    if not isinstance(true_objs, Tensor):
        raise TypeError(f"true_objs must be a torch.Tensor; got {type(true_objs).__name__}")
    batch = pred_costs.shape[0]
    if true_objs.shape not in ((batch,), (batch, 1)):
        raise ValueError(f"true_objs must have shape [B] or [B, 1] with B = {batch} (one optimal objective per row "
                         f"of true_costs, as OptDataset stores it); got shape {tuple(true_objs.shape)}")
    check_finite(true_objs, "true_objs")
    device = pred_costs.device
    w = _solve_labels(solver, pred_costs.detach(), sense, name=pred_name)
    objective = (w.to(device) * true_costs.detach().to(device=device, dtype=torch.float64)).sum(dim=1)
    if true_objs.is_floating_point():
        # rounded like the stored optimum (OptDataset keeps float32), so that an optimal decision has regret 0
        objective = objective.to(true_objs.dtype).to(torch.float64)
    optimum = true_objs.detach().to(device=device, dtype=torch.float64).reshape(batch)
    gap = objective - optimum if sense == "min" else optimum - objective
    return gap, optimum


def _reduce(regrets: Tensor, optimum_abs_sum: Tensor, reduction: str) -> Tensor:
    if reduction == "normalized":
        return regrets.sum() / (optimum_abs_sum + PYEPO_EPS)
    if reduction == "sum":
        return regrets.sum()
    if reduction == "mean":  # PyEPO returns 0.0 for no instances
        return regrets.mean() if regrets.numel() else regrets.new_zeros(())
    return regrets


@torch.no_grad()
def batch_regret(pred_costs: Tensor, true_costs: Tensor, true_objs: Tensor, solver: Callable[..., Tensor], *,
                 sense: str, reduction: str = "normalized") -> Tensor:
    r"""Regret of the decisions taken on predicted costs, PyEPO's normalisation by default; one solver call.

    For instances ``i`` with predicted costs :math:`\hat c_i`, true costs :math:`c_i` and true optimal
    objectives :math:`z^*_i` (``OptDataset.objs``), the decision is :math:`w(\hat c_i)`, the solver's optimum
    for the prediction (``solver(-ĉ)`` for ``sense="min"``, ``solver(ĉ)`` for ``"max"``, all rows in one call,
    in float64), and its regret is (:math:`c_i^\top w` computed in float64, then rounded to ``true_objs``' dtype
    like the stored optimum, so that a decision as good as the optimum has regret exactly 0)

    .. math::

        r_i = c_i^\top w(\hat c_i) - z^*_i \ (\texttt{"min"}), \qquad
        r_i = z^*_i - c_i^\top w(\hat c_i) \ (\texttt{"max"}) .

    ``reduction``: ``"normalized"`` (default) :math:`\sum_i r_i / (\sum_i |z^*_i| + 10^{-8})`, PyEPO's
    ``pyepo.metric.regret`` (``pyepo/metric/regret.py`` and ``pyepo/metric/_common.py``,
    ``normalize_regret``, pyepo 2.2.7) for these instances; ``"sum"``, ``"mean"`` (0 for no instances, as in
    PyEPO) or ``"none"`` (the ``[B]`` regrets). The normalised value over a whole data set is a ratio of sums,
    so it is **not** the mean of per-batch values; :func:`dataset_regret` accumulates it over a loader, and
    :func:`discograd.metrics.normalized_regret` is a different quantity (each regret over its own
    :math:`|z^*_i|`).

    Args:
        pred_costs: predicted costs ``[B, d]`` (PyEPO's ``cp``), finite; not differentiated.
        true_costs: true costs ``[B, d]``.
        true_objs: true optimal objectives ``[B]`` or ``[B, 1]`` (not recomputed, as in PyEPO).
        solver: the batched solver of the problem (maximising ``<θ, w>``).
        sense: ``"min"`` (costs) or ``"max"`` (values), keyword-only.
        reduction: one of :data:`REGRET_REDUCTIONS`.

    Returns:
        a float64 tensor on ``pred_costs``' device: 0-dimensional, or ``[B]`` for ``"none"``.

    Example:
        >>> import torch
        >>> from discograd.pto import batch_regret
        >>> from discograd.solvers import TopK
        >>> true_costs = torch.tensor([[1.0, 2.0, 4.0], [3.0, 1.0, 2.0]])
        >>> true_objs = torch.tensor([1.0, 1.0])  # choose the cheapest item
        >>> pred_costs = torch.tensor([[0.0, 0.0, -1.0], [3.0, 1.0, 2.0]])  # item 2 (cost 4), item 1 (cost 1)
        >>> float(batch_regret(pred_costs, true_costs, true_objs, TopK(1), sense="min"))  # (3 + 0) / (1 + 1)
        1.499999...
        >>> batch_regret(pred_costs, true_costs, true_objs, TopK(1), sense="min", reduction="none")
        tensor([3., 0.], dtype=torch.float64)
    """
    reduction = _check_reduction(reduction)
    regrets, optimum = _instance_regrets(pred_costs, true_costs, true_objs, solver, sense)
    return _reduce(regrets, optimum.abs().sum(), reduction)


@torch.no_grad()
def dataset_regret(model: Callable[[Tensor], Tensor], loader: Any, solver: Callable[..., Tensor], *, sense: str,
                   reduction: str = "normalized") -> float | Tensor:
    r"""Regret of a prediction model over a data loader, as ``pyepo.metric.regret(model, optmodel, loader)``.

    Follows ``pyepo.metric.regret`` (``pyepo/metric/regret.py``, pyepo 2.2.7): every batch ``(x, c, w, z, ...)``
    of ``loader`` (an :class:`OptDataset` loader; fields after the fourth are ignored) is moved to the
    model's device (that of its first parameter; the CPU without one), the model predicts
    :math:`\hat c = \text{model}(x)` without gradients, the solver is called once on the batch, and the
    per-instance regrets (see :func:`batch_regret`) are accumulated over the whole loader before reducing.
    The default ``"normalized"`` is :math:`\sum_i r_i / (\sum_i |z^*_i| + 10^{-8})` over the data set, a
    ratio of sums, not a mean over batches. A :class:`torch.nn.Module` is put in ``eval()`` mode for the
    evaluation and given back in the mode it was in; any other callable is called as it is.

    Args:
        model: a module or callable mapping features ``[B, ...]`` to predicted costs ``[B, d]``.
        loader: an iterable of batches ``(x, c, w, z, ...)``, e.g. ``DataLoader(OptDataset(...))``.
        solver: the batched solver of the problem (maximising ``<θ, w>``).
        sense: ``"min"`` (costs) or ``"max"`` (values), keyword-only.
        reduction: one of :data:`REGRET_REDUCTIONS`.

    Returns:
        a Python float, or for ``"none"`` the ``[N]`` float64 CPU tensor of per-instance regrets in the
        loader's order.

    Raises:
        ValueError: a prediction whose shape differs from the batch's costs, or not finite; a batch with
            fewer than four fields; a bad ``sense`` or ``reduction``.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from discograd.pto import OptDataset, dataset_regret, grid_graph, shortest_path_data
        >>> from discograd.solvers import ShortestPath
        >>> x, c = shortest_path_data(64, 5, (5, 5), deg=2, noise_width=0.5)
        >>> solver = ShortestPath(25, grid_graph(5, 5), 0, 24)
        >>> loader = DataLoader(OptDataset(solver, x, c, sense="min"), batch_size=16)
        >>> model = torch.nn.Linear(5, 40)
        >>> 0.0 < dataset_regret(model, loader, solver, sense="min")
        True
    """
    reduction = _check_reduction(reduction)
    sense = check_sense(sense)
    if not callable(model):
        raise TypeError(f"model must be a torch.nn.Module or a callable; got {type(model).__name__}")
    module = model if isinstance(model, torch.nn.Module) else None
    device = torch.device("cpu")
    if module is not None:
        parameter = next(module.parameters(), None)
        if parameter is not None:
            device = parameter.device
    was_training = module.training if module is not None else False
    regrets: list[Tensor] = []
    optimum_abs_sum = torch.zeros((), dtype=torch.float64)
    if module is not None:
        module.eval()
    try:
        for index, data in enumerate(loader):
            if not isinstance(data, (tuple, list)) or len(data) < 4:
                raise ValueError(f"every batch of loader must be a tuple (x, c, w, z, ...) as an OptDataset gives; "
                                 f"batch {index} is {type(data).__name__}"
                                 + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
            x, c, _, z = data[:4]
            if module is not None:
                x = x.to(device)
            pred = model(x)
            regret, optimum = _instance_regrets(pred, c, z, solver, sense, pred_name=f"model output (batch {index})")
            regrets.append(regret.cpu())
            optimum_abs_sum += optimum.abs().sum().cpu()
    finally:
        if module is not None:
            module.train(was_training)
    values = torch.cat(regrets) if regrets else torch.zeros(0, dtype=torch.float64)
    result = _reduce(values, optimum_abs_sum, reduction)
    return result if reduction == "none" else float(result)
