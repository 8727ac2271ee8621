"""Reproductions of the I-MLE paper's experiments, with a command-line interface (``discograd --help``)."""
