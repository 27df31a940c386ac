"""Entry point for ``sansio-minger`` (filled in by the Minger issue)."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the Minger command-line tool (not implemented yet)."""
    del argv
    print("sansio-minger: not built yet", file=sys.stderr)
    return 2
