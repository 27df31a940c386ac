"""A bounded run of every fuzz harness under atheris (skipped when it is not installed).

Each harness runs as its own process for FUZZ_SMOKE_SECONDS (default 25) from the
committed corpus, with new inputs and crash files kept in a temporary directory. A
failure shows libFuzzer's report, including the crashing input in base64.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess

import pytest
from fuzz import run as fuzz_run

SMOKE_SECONDS = int(os.environ.get("FUZZ_SMOKE_SECONDS", "25"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="needs atheris"),
]


@pytest.mark.parametrize("target", fuzz_run.targets())
def test_harness_survives_a_smoke_run(target: str, tmp_path: pathlib.Path) -> None:
    """libFuzzer runs the harness for the smoke budget and finds no crash, leak or hang."""
    work, artifacts = tmp_path / "work", tmp_path / "crashes"
    work.mkdir()
    artifacts.mkdir()
    # A fixed seed keeps the run repeatable: the same commit explores the same inputs.
    cmd = fuzz_run.fuzz_command(
        target, seconds=SMOKE_SECONDS, work=work, artifacts=artifacts, extra=["-seed=1"]
    )
    proc = subprocess.run(
        cmd, cwd=fuzz_run.ROOT, capture_output=True, timeout=SMOKE_SECONDS * 3 + 60
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:].decode("utf-8", "replace")
    result = fuzz_run.summarise(target, proc.returncode, output, 0.0, tmp_path)
    assert result.executions, output[-2000:].decode("utf-8", "replace")
