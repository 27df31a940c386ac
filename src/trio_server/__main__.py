"""Entry point for ``sansio-smtpd`` and ``python -m trio_server``."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the server (not implemented yet: the server issue fills this in)."""
    del argv
    print("sansio-smtpd: the server is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
