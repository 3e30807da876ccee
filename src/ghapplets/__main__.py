"""``python -m ghapplets``: the same as the ``ghapplets`` command."""

from ghapplets.cli.main import main

if __name__ == "__main__":
    main()
