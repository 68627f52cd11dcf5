"""`python -m analyzer`: the analyzer command line."""

from .cli import main

raise SystemExit(main())
