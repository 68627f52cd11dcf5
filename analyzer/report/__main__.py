"""`python -m analyzer.report`."""

from .cli import main

main()
