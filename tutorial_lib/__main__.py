"""``python -m tutorial_lib ...``: see :mod:`tutorial_lib.cli`."""

from tutorial_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
