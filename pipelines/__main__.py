"""`python -m pipelines ...` is `upload-status ...` (tests and checkouts without the script)."""

from pipelines.commands.cli import main

if __name__ == "__main__":
    main()
