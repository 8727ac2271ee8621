"""``python -m discograd ...``: the ``discograd`` command line (also the entry point for ``torchrun -m discograd``)."""

from .experiments.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
