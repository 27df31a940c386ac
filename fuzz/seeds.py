"""(Re)write the curated seed corpora in fuzz/corpus/<target>/.

Run from the repository root: ``.venv/bin/python -m fuzz.seeds [target ...]``. Each
harness module has a ``seeds()`` function returning ``(name, input)`` pairs; the files
are named ``seed-<name>-<sha1 prefix>``. The fuzzer's own discoveries go to fuzz/work/
and are not committed; only crash inputs join the corpus, as ``crash-<finding>-*``.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def write_seeds(target: str) -> int:
    """Writes the seeds of one harness; returns how many."""
    module = importlib.import_module(f"fuzz.{target}")
    make: Callable[[], Iterable[tuple[str, bytes]]] = module.seeds
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, data in make():
        digest = hashlib.sha1(data).hexdigest()[:8]  # a file name, not security
        (directory / f"seed-{name}-{digest}").write_bytes(data)
        count += 1
    return count


def main(argv: list[str]) -> int:
    """Writes the seeds of the named targets (default: every harness present)."""
    names = argv or sorted(p.stem for p in HERE.glob("fuzz_*.py"))
    for name in names:
        print(f"{name}: {write_seeds(name)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
