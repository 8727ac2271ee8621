"""Predict-then-optimize on PyEPO's benchmarks: :mod:`.train` (one run), :mod:`.compare` (methods x seeds x
settings), :mod:`.commands` (``discograd pto``). The data, graphs, data set and regret live in
:mod:`discograd.pto`."""
