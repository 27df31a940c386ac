"""Run every fuzz harness for a fixed time and summarise what libFuzzer reports.

Usage (from the repository root; ``make fuzz`` passes FUZZ_SECONDS):

    .venv/bin/python fuzz/run.py --seconds 600 [--jobs 2] [--targets fuzz_params ...]

Each harness runs as ``python -m fuzz.<target>`` with its working corpus in
``fuzz/work/<target>/`` (new inputs go there, not into git), the curated seeds of
``fuzz/corpus/<target>/`` read-only, the SMTP dictionary, and crash artifacts written to
``fuzz/crashes/<target>/``. The exit status is non-zero when any harness crashed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "fuzz"
CORPUS_DIR = FUZZ_DIR / "corpus"
WORK_DIR = FUZZ_DIR / "work"
CRASH_DIR = FUZZ_DIR / "crashes"
DICTIONARY = FUZZ_DIR / "smtp.dict"

# Longest input libFuzzer may generate per target: a few commands' worth for the
# grammar targets, several KiB for the session targets so limits can be crossed.
MAX_LEN = {
    "fuzz_params": 1024,
    "fuzz_minger": 1024,
    "fuzz_smtp_server": 4096,
    "fuzz_smtp_session": 4096,
    "fuzz_smtp_client": 4096,
}

_COV = re.compile(rb"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")
_EXECS = re.compile(rb"stat::number_of_executed_units: (\d+)")


def targets() -> list[str]:
    """Returns the names of the harness modules present, in a stable order."""
    return sorted(p.stem for p in FUZZ_DIR.glob("fuzz_*.py"))


def fuzz_command(
    target: str, *, seconds: int, work: Path, artifacts: Path, extra: Sequence[str] = ()
) -> list[str]:
    """Builds the libFuzzer command line for one harness.

    Args:
        target: harness module name, e.g. ``"fuzz_params"``.
        seconds: ``-max_total_time``.
        work: writable corpus directory (first corpus argument, receives new inputs).
        artifacts: directory for crash/timeout/oom inputs.
        extra: further libFuzzer flags.

    Returns:
        The argument vector, to run with the repository root as working directory.
    """
    return [
        sys.executable,
        "-m",
        f"fuzz.{target}",
        str(work),
        str(CORPUS_DIR / target),
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN.get(target, 4096)}",
        f"-dict={DICTIONARY}",
        f"-artifact_prefix={artifacts}/",
        # A hang is a bug too ("never a hang"): any single input over 10 s fails.
        "-timeout=10",
        "-print_final_stats=1",
        *extra,
    ]


@dataclasses.dataclass
class Result:
    """What one run reported."""

    target: str
    returncode: int
    executions: int | None
    cov: int | None
    ft: int | None
    seconds: float
    log: Path


def summarise(target: str, returncode: int, output: bytes, seconds: float, log: Path) -> Result:
    """Extracts executions and the last ``cov:``/``ft:`` figures from libFuzzer's output."""
    covs = _COV.findall(output)
    execs = _EXECS.findall(output)
    executions = int(execs[-1]) if execs else (int(covs[-1][0]) if covs else None)
    return Result(
        target=target,
        returncode=returncode,
        executions=executions,
        cov=int(covs[-1][1]) if covs else None,
        ft=int(covs[-1][2]) if covs else None,
        seconds=seconds,
        log=log,
    )


def _start(target: str, seconds: int, extra: Sequence[str]) -> tuple[subprocess.Popen[bytes], Path]:
    work = WORK_DIR / target
    artifacts = CRASH_DIR / target
    for d in (work, artifacts, WORK_DIR / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    log = WORK_DIR / "logs" / f"{target}.log"
    cmd = fuzz_command(target, seconds=seconds, work=work, artifacts=artifacts, extra=extra)
    print(f"[fuzz] {target}: {' '.join(cmd[1:])}", flush=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    return proc, log


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the selected harnesses, at most ``--jobs`` at a time; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600, help="per harness (default 600)")
    parser.add_argument("--jobs", type=int, default=1, choices=(1, 2), help="parallel runs")
    parser.add_argument("--targets", nargs="*", default=None, help="harness names")
    parser.add_argument("extra", nargs="*", help="extra libFuzzer flags, after --")
    args = parser.parse_args(argv)
    chosen = args.targets or targets()
    unknown = sorted(set(chosen) - set(targets()))
    if unknown:
        parser.error(f"no such harness: {', '.join(unknown)} (have {', '.join(targets())})")

    pending = list(chosen)
    running: dict[str, tuple[subprocess.Popen[bytes], Path, float]] = {}
    results: list[Result] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            proc, log = _start(name, args.seconds, args.extra)
            running[name] = (proc, log, time.monotonic())
        for name, (proc, log, started) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            result = summarise(
                name, proc.returncode, log.read_bytes(), time.monotonic() - started, log
            )
            results.append(result)
            print(_line(result), flush=True)
        time.sleep(0.5)

    print("\n[fuzz] summary")
    for result in results:
        print(_line(result))
    return 0 if all(r.returncode == 0 for r in results) else 1


def _line(r: Result) -> str:
    status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode}, see {r.log})"
    return (
        f"  {r.target:<20} {status:<8} execs={r.executions} cov={r.cov} ft={r.ft} "
        f"time={r.seconds:.0f}s"
    )


if __name__ == "__main__":
    sys.exit(main())
