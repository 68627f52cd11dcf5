"""`python -m training`: train CLOSURE-Lite (see `training.train`)."""

from .train import main

raise SystemExit(main())
