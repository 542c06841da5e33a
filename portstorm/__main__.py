"""``python -m portstorm``: the same entry point as the console script."""

from portstorm.cli import main

if __name__ == "__main__":
    main()
