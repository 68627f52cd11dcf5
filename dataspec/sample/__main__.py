"""``python -m dataspec.sample OUT --pages N --seed S``."""

from .cli import main

if __name__ == "__main__":
    main()
