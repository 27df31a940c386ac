"""Replay every fuzz corpus file through its harness, without atheris.

The harnesses in fuzz/ import atheris only to start the fuzzer, so their
``test_one_input`` runs anywhere; this keeps them from rotting on machines (and CI
jobs) that never fuzz, and re-checks every seed and past crash input on each run.
"""

from __future__ import annotations

import importlib
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
HARNESSES = sorted(p.stem for p in (ROOT / "fuzz").glob("fuzz_*.py"))


def test_every_harness_has_a_corpus() -> None:
    """Each fuzz/fuzz_<target>.py has a non-empty fuzz/corpus/<target>/ of seeds."""
    assert HARNESSES
    for target in HARNESSES:
        assert any((CORPUS / target).glob("seed-*")), f"no seeds for {target}"


@pytest.mark.parametrize("target", HARNESSES)
def test_corpus_replays_through_harness(target: str) -> None:
    """Every corpus file of a target runs through test_one_input without raising."""
    harness = importlib.import_module(f"fuzz.{target}")
    files = sorted(p for p in (CORPUS / target).iterdir() if p.is_file())
    for path in files:
        try:
            harness.test_one_input(path.read_bytes())
        except Exception as exc:  # report which file, then fail with the original error
            raise AssertionError(f"{path.relative_to(ROOT)} fails its harness") from exc


@pytest.mark.parametrize("target", HARNESSES)
def test_harness_module_states_its_invariant(target: str) -> None:
    """The first line of every harness is a comment stating the invariant it checks."""
    first = (ROOT / "fuzz" / f"{target}.py").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# Invariant:"), first


@pytest.mark.slow
def test_harnesses_import_without_atheris() -> None:
    """Every harness imports and runs one input with atheris made unimportable."""
    code = (
        "import sys; sys.modules['atheris'] = None\n"
        "import importlib\n"
        f"for name in {HARNESSES!r}:\n"
        "    importlib.import_module('fuzz.' + name).test_one_input(b'')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
