"""`make bench`: set up the tools, run every benchmark, write bench/RESULTS.md.

Usage: `python bench/run.py [--quick] [--reps N] [--only KEY,...] [--no-engine] [--no-e2e]`.
`make bench BENCH_QUICK=1` (or --quick) scales every message count down by 5 for a quick
look; the full run takes under about 15 minutes on 2 cores. Raw numbers go to
bench/work/results.json, the report to bench/RESULTS.md (--output elsewhere).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import e2e, report, targets, tools

BENCH_DIR = Path(__file__).resolve().parent


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "postfix": _postfix_version(),
        "revision": _revision(),
        "loadavg_at_start": " ".join(loadavg),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _revision() -> str:
    """The commit measured, and whether src/ had uncommitted changes."""
    root = BENCH_DIR.parent
    head = (
        subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            check=False,
        )
        .stdout.decode()
        .strip()
    )
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
        capture_output=True,
        check=False,
    ).stdout.strip()
    return (head or "unknown") + (" with uncommitted changes in src/" if dirty else "")


def _postfix_version() -> str:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "postfix"], capture_output=True, check=False
    )
    return done.stdout.decode().strip() or "unknown"


def main() -> None:
    """Parse the command line and run the suite."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    parser.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""))
    parser.add_argument(
        "--budget",
        type=float,
        default=float(os.environ.get("BENCH_BUDGET", "0")) or None,
        help="seconds one measured run may take before its message count is cut",
    )
    parser.add_argument("--no-engine", action="store_true")
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    if args.budget is None:
        args.budget = 4.0 if args.quick else 12.0
    started = time.monotonic()
    # SIGTERM unwinds like Ctrl-C, so every server the suite started is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    tools.ensure_postfix_tools()
    py_spy = tools.ensure_bench_venv() / "py-spy"
    e2e.WORK_DIR.mkdir(parents=True, exist_ok=True)

    factor = 0.2 if args.quick else 1.0
    results: dict[str, object] = {
        "machine": machine(),
        "quick": args.quick,
        "reps": args.reps,
    }
    if not args.no_engine:
        # A half-written engine in the shared tree must not cost the end-to-end part.
        try:
            from bench import engine_bench

            results["engine"] = engine_bench.run_all(quick=args.quick)
        except Exception as exc:
            results["engine_error"] = f"{type(exc).__name__}: {exc}"
            print(f"[bench] engine benchmarks failed: {results['engine_error']}", flush=True)
    if not args.no_e2e:
        only = {key for key in args.only.split(",") if key}
        results["e2e"] = targets.run_e2e(
            factor=factor,
            reps=args.reps,
            only=only,
            py_spy=py_spy if not args.no_profile else None,
            budget=args.budget,
        )
    results["seconds"] = time.monotonic() - started
    (e2e.WORK_DIR / "results.json").write_text(json.dumps(results, indent=1))
    args.output.write_text(report.render(results))
    print(f"[bench] wrote {args.output} in {results['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
