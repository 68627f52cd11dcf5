"""`python -m dataspec`: the dataspec command line."""

from .cli import main

main()
