"""Render results.json (as built by bench/run.py) into bench/RESULTS.md.

The tables, ratios and the met / not met verdicts are computed here from the numbers of
the same run; bench/reading.md (hand-written: what the profiles say and the next steps)
is appended verbatim.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

__all__ = ["render"]

BENCH_DIR = Path(__file__).resolve().parent
_AIOSMTPD = {"discard": "aiosmtpd-discard", "maildir": "aiosmtpd-maildir"}
_SINK = "smtp-sink"


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _cell(values: list[float], digits: int = 0) -> str:
    if not values:
        return "–"
    return f"{_fmt(_med(values), digits)} ({_fmt(min(values), digits)}–{_fmt(max(values), digits)})"


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    mode = "quick (message counts x0.2)" if results.get("quick") else "full"
    return [
        "## Machine",
        "",
        f"- {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}",
        f"- {m['implementation']} {m['python']}; Postfix {m['postfix']} (smtp-source, smtp-sink)",
        f"- sansio-smtp revision {m.get('revision', 'unknown')}",
        f"- run {m['date']}, {mode}, {results['reps']} measured runs per cell, "
        f"load average at start {m['loadavg_at_start']}, suite took "
        f"{results.get('seconds', 0):.0f} s",
        "",
    ]


def _engine(engine: dict[str, Any]) -> list[str]:
    lines = [
        "## 1. In-process engine benchmarks",
        "",
        "time.perf_counter harness (bench/engine_bench.py): warm-up, then repetitions of a",
        "fixed batch each; the cell is the median rate with min–max over the repetitions.",
        "",
        "Other work on the machine only ever slows a repetition down, so the best one is",
        "shown too: it is the closer estimate of what a quiet machine does.",
        "",
        "| benchmark | what one operation is | median (min–max) | best | unit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in engine.get("rows", []):
        lines.append(
            f"| {row['name']} | {row['what']} | {_cell(row['rates'])} "
            f"| {_fmt(max(row['rates']))} | {row['unit']} |"
        )
    for note in engine.get("notes", []):
        lines += ["", note]
    if engine.get("profile"):
        lines += ["", "cProfile of the DATA path (top functions by own time):", "", "```"]
        lines += [engine["profile"].rstrip(), "```"]
    if engine.get("minger_profile"):
        lines += ["", "cProfile of the Minger query path (top functions by own time):", ""]
        lines += ["```", engine["minger_profile"].rstrip(), "```"]
    if engine.get("session_profile"):
        lines += ["", "cProfile of the pipelined session (top functions by own time):", ""]
        lines += ["```", engine["session_profile"].rstrip(), "```"]
    lines.append("")
    return lines


def _rates(outcomes: list[dict[str, Any]], key: str, profile: str, field: str) -> list[float]:
    for o in outcomes:
        if o["target"] == key and o["profile"] == profile:
            return [float(r[field]) for r in o["runs"]]
    return []


def _ratio(outcomes: list[dict[str, Any]], key: str, other: str, profile: str) -> float:
    ours = _rates(outcomes, key, profile, "msgs_per_s")
    theirs = _rates(outcomes, other, profile, "msgs_per_s")
    if not ours or not theirs:
        return float("nan")
    return _med(ours) / _med(theirs)


def _e2e(data: dict[str, Any]) -> list[str]:
    outcomes: list[dict[str, Any]] = data["outcomes"]
    lines = [
        "## 2. End to end on loopback",
        "",
        "Each server is started by the suite on a free 127.0.0.1 port, warmed up with a tenth",
        "of the load, then measured. Cells: median (min–max). msg/s and MB/s from the",
        "client's wall time; CPU µs/msg from the server's /proc/<pid>/stat utime+stime delta",
        "(kernel share: the stime part, mostly loopback TCP work done in the server's name);",
        "peak RSS is the server's VmHWM, reset before each run. Ratios compare medians of",
        "msg/s with aiosmtpd of the same mode and with smtp-sink, from this same run.",
        "To bound the suite's time, a server whose warm-up shows one run of the profile",
        f"would take over {data.get('budget_seconds', 0):.0f} s gets a smaller -m, shown next to",
        "its name (rates barely depend on -m once the 20 sessions are busy).",
        "",
        "Servers:",
        "",
    ]
    for t in data["targets"]:
        lines.append(f"- `{t['key']}`: {t['title']}" + (f". {t['note']}" if t["note"] else ""))
        if t.get("command"):
            lines.append(f"  `{t['command']}`")
    for key, why in data.get("skipped", {}).items():
        lines.append(f"- `{key}`: not measured: {why}")
    lines.append("")
    for p in data["profiles"]:
        lines += [f"### {p['name']}: `{p['command']}`", ""]
        lines.append(
            "| server | msg/s | MB/s | server CPU µs/msg | kernel share | peak RSS MiB "
            "| × aiosmtpd | × smtp-sink |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for t in data["targets"]:
            key = t["key"]
            row = next(
                (o for o in outcomes if o["target"] == key and o["profile"] == p["name"]), None
            )
            if row is None:
                continue
            if row["error"]:
                lines.append(f"| {key} | failed: {row['error'][:120]} | | | | | | |")
                continue
            rss = [r["peak_rss_kib"] / 1024 for r in row["runs"]]
            sent = row["runs"][0]["messages"] if row["runs"] else p["messages"]
            shown = key if sent == p["messages"] else f"{key} (-m {sent})"
            vs_aio = _ratio(outcomes, key, _AIOSMTPD[t["mode"]], p["name"])
            vs_sink = _ratio(outcomes, key, _SINK, p["name"])
            lines.append(
                f"| {shown} | {_cell(_rates(outcomes, key, p['name'], 'msgs_per_s'))} "
                f"| {_cell(_rates(outcomes, key, p['name'], 'mb_per_s'), 1)} "
                f"| {_cell(_rates(outcomes, key, p['name'], 'cpu_us_per_msg'))} "
                f"| {_fmt(100 * _med(_rates(outcomes, key, p['name'], 'sys_share')))}% "
                f"| {_cell(rss, 1)} | {_fmt(vs_aio, 2)} | {_fmt(vs_sink, 2)} |"
            )
        lines.append("")
    idle = data.get("idle_kib_per_connection", {})
    if idle:
        lines += [
            "### Idle connections",
            "",
            "Server RSS growth for 200 connections held open after greeting and EHLO.",
            "",
            "| server | KiB per idle connection |",
            "| --- | --- |",
        ]
        lines += [f"| {k} | {'failed' if v is None else _fmt(v, 1)} |" for k, v in idle.items()]
        lines.append("")
    return lines


def _cpu_ratio(outcomes: list[dict[str, Any]], key: str, other: str, profile: str) -> float:
    """How many times less server CPU per message `key` needs than `other`."""
    ours = _rates(outcomes, key, profile, "cpu_us_per_msg")
    theirs = _rates(outcomes, other, profile, "cpu_us_per_msg")
    if not ours or not theirs:
        return float("nan")
    return _med(theirs) / _med(ours)


def _verdicts(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets (issue 7)",
        "",
        "Verdicts use the issue's measure (msg/s ratio, medians of the same run). The last",
        "column gives the same comparison by server CPU per message, which other work on",
        "the machine disturbs less than throughput (the client shares the 2 cores).",
        "",
        "| target | measured | verdict | by CPU µs/msg |",
        "| --- | --- | --- | --- |",
    ]

    def row(name: str, value: float, goal: float, shown: str, cpu: str = "") -> None:
        if value != value:
            lines.append(f"| {name} | not measured | – | |")
        else:
            verdict = "met" if value >= goal else "NOT met"
            lines.append(f"| {name} | {shown} | {verdict} | {cpu} |")

    data = results.get("e2e")
    if data:
        o = data["outcomes"]
        checks = (
            ("small, discard: ≥ 3× aiosmtpd", "ours-discard", "aiosmtpd-discard", "small", 3),
            ("large, discard: ≥ 5× aiosmtpd", "ours-discard", "aiosmtpd-discard", "large", 5),
            ("large, discard: ≥ 0.5× smtp-sink", "ours-discard", _SINK, "large", 0.5),
            (
                "small, fsynced Maildir: ≥ 3× aiosmtpd Maildir",
                "ours-maildir",
                "aiosmtpd-maildir",
                "small",
                3,
            ),
        )
        for name, key, other, profile, goal in checks:
            r = _ratio(o, key, other, profile)
            c = _cpu_ratio(o, key, other, profile)
            row(name, r, goal, f"{_fmt(r, 2)}×", f"{_fmt(c, 2)}×")
        for key in ("ours-discard", "ours-maildir"):
            small = _rates(o, key, "small", "peak_rss_kib")
            large = _rates(o, key, "large", "peak_rss_kib")
            if small and large:
                growth = _med(large) / _med(small)
                # "Flat": 100x bigger messages may not double the peak (20 in flight).
                row(
                    f"memory flat in message size, {key} (peak RSS large / small < 2)",
                    2 - growth,
                    0,
                    f"{_fmt(_med(small) / 1024, 1)} → {_fmt(_med(large) / 1024, 1)} MiB",
                )
        idle_kib = data.get("idle_kib_per_connection", {})
        for key in ("ours-discard", "ours-maildir"):
            idle = idle_kib.get(key)
            if idle is not None:
                row(
                    f"under 100 KiB per idle connection, {key}",
                    100 - idle,
                    0,
                    f"{_fmt(idle, 1)} KiB",
                )
    engine = results.get("engine")
    if engine:
        data_row = next((r for r in engine["rows"] if r["name"] == "DATA path"), None)
        if data_row is not None:
            v = _med(data_row["rates"])
            best = max(data_row["rates"])
            shown = f"median {_fmt(v)} MB/s (best {_fmt(best)})"
            row("engine DATA path ≥ 500 MB/s (median)", v, 500, shown)
    lines.append("")
    return lines


def _py_spy(data: dict[str, Any]) -> list[str]:
    spied = data.get("py_spy", {})
    if not spied:
        return []
    lines = [
        "## Server profiles (py-spy)",
        "",
        "One extra run of the profile under `py-spy record --gil --rate 200` (not among the",
        "measured runs). --gil samples only the thread holding the GIL: Python work, not",
        "threads blocked in fsync or idle worker threads; time inside send/recv/fsync",
        "system calls is the kernel share column above. Self% = samples with the function",
        "on top of the stack; incl% = samples with it anywhere on the stack.",
        "",
    ]
    for name, text in spied.items():
        lines += [f"### {name}", "", "```", text.rstrip(), "```", ""]
    return lines


def render(results: dict[str, Any]) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py), which first installs what is missing:",
        "Debian's `postfix` package for smtp-source and smtp-sink (preseeded \"No",
        'configuration", daemon stopped and disabled) and a bench-only venv with py-spy',
        "(bench/work/venv). Quick look: `make bench BENCH_QUICK=1` (message counts x0.2).",
        "Knobs: `BENCH_REPS` (measured runs per cell, default 3), `BENCH_ONLY` (comma-",
        "separated server keys), `BENCH_BUDGET` (seconds per run before -m is cut). Every",
        "server listens on 127.0.0.1 only. Raw numbers: bench/work/results.json (ignored).",
        "",
    ]
    lines += _machine(results)
    lines += _verdicts(results)
    if results.get("engine"):
        lines += _engine(results["engine"])
    elif results.get("engine_error"):
        failed = f"Failed: {results['engine_error']}"
        lines += ["## 1. In-process engine benchmarks", "", failed, ""]
    if results.get("e2e"):
        lines += _e2e(results["e2e"])
        lines += _py_spy(results["e2e"])
    reading = BENCH_DIR / "reading.md"
    if reading.exists():
        lines += [reading.read_text().rstrip(), ""]
    return "\n".join(lines)
