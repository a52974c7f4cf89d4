"""``python -m dupfinder``."""

from dupfinder.cli import main

if __name__ == "__main__":
    main()
