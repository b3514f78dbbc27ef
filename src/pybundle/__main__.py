"""``python -m pybundle``: the same as the ``pybundle`` console script."""

from pybundle.cli import main

main()
