"""`python -m training`: train CLOSURE-Lite (see `training.train_cli`, `training.train`)."""

from .train_cli import main

raise SystemExit(main())
