"""What the benchmark's figures mean: the issue's targets, the table, the profile listing."""

from __future__ import annotations

import cProfile
import io
import pstats
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Target", "informative_ratios", "profile_table", "render", "targets"]


@dataclass(frozen=True)
class Target:
    """A ratio the issue asks for, and whether this run met it (`None`: not measured)."""

    name: str
    ratio: float | None
    op: str
    limit: float
    met: bool | None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _target(name: str, ratio: float | None, op: str, limit: float) -> Target:
    met = None if ratio is None else (ratio <= limit if op == "<=" else ratio >= limit)
    return Target(name, None if ratio is None else round(ratio, 4), op, limit, met)


def targets(
    overhead_us: dict[str, float], executions_per_s: dict[str, float], concurrency: int
) -> list[Target]:
    """The issue's targets, as ratios of figures measured in the same run."""
    ours = overhead_us.get("aifactory_embedded")
    return [
        _target(
            "aifactory_embedded / langgraph_sqlite per-stage overhead",
            _ratio(ours, overhead_us.get("langgraph_sqlite")),
            "<=",
            0.2,
        ),
        _target(
            "aifactory_embedded / sqlite_commit per-stage overhead",
            _ratio(ours, overhead_us.get("sqlite_commit")),
            "<=",
            10.0,
        ),
        _target(
            f"aifactory_embedded / langgraph_sqlite_async executions/s at {concurrency}",
            _ratio(
                executions_per_s.get("aifactory_embedded"),
                executions_per_s.get("langgraph_sqlite_async"),
            ),
            ">=",
            10.0,
        ),
        # Against DBOS Transact, each on the same storage: SQLite (WAL, synchronous=NORMAL),
        # and PostgreSQL (`--state`; `aifactory_postgres` is aifactory's PostgreSQL store).
        _target(
            "aifactory_embedded / dbos_sqlite per-stage overhead",
            _ratio(ours, overhead_us.get("dbos_sqlite")),
            "<=",
            0.25,
        ),
        _target(
            "aifactory_postgres / dbos_postgres per-stage overhead",
            _ratio(overhead_us.get("aifactory_postgres"), overhead_us.get("dbos_postgres")),
            "<=",
            0.5,
        ),
    ]


def informative_ratios(
    overhead_us: dict[str, float], executions_per_s: dict[str, float]
) -> dict[str, float | None]:
    """Ratios that are not targets: the floor of aifactory's writes, LangGraph at aifactory's
    durability, the wire placement, throughput against DBOS."""
    pairs = {
        "log_floor / langgraph_sqlite per-stage overhead": (
            overhead_us.get("log_floor"),
            overhead_us.get("langgraph_sqlite"),
        ),
        "durable_floor / langgraph_sqlite per-stage overhead": (
            overhead_us.get("durable_floor"),
            overhead_us.get("langgraph_sqlite"),
        ),
        "durable_floor / sqlite_commit per-stage overhead": (
            overhead_us.get("durable_floor"),
            overhead_us.get("sqlite_commit"),
        ),
        "aifactory_embedded / durable_floor per-stage overhead": (
            overhead_us.get("aifactory_embedded"),
            overhead_us.get("durable_floor"),
        ),
        "aifactory_embedded / langgraph_sqlite_normal per-stage overhead": (
            overhead_us.get("aifactory_embedded"),
            overhead_us.get("langgraph_sqlite_normal"),
        ),
        "aifactory_embedded_wire / langgraph_sqlite per-stage overhead": (
            overhead_us.get("aifactory_embedded_wire"),
            overhead_us.get("langgraph_sqlite"),
        ),
        "aifactory_embedded_wire / sqlite_commit per-stage overhead": (
            overhead_us.get("aifactory_embedded_wire"),
            overhead_us.get("sqlite_commit"),
        ),
        "aifactory_embedded_wire / langgraph_sqlite_async executions/s": (
            executions_per_s.get("aifactory_embedded_wire"),
            executions_per_s.get("langgraph_sqlite_async"),
        ),
        "log_floor / dbos_sqlite per-stage overhead": (
            overhead_us.get("log_floor"),
            overhead_us.get("dbos_sqlite"),
        ),
        "durable_floor / dbos_sqlite per-stage overhead": (
            overhead_us.get("durable_floor"),
            overhead_us.get("dbos_sqlite"),
        ),
        "aifactory_embedded / dbos_sqlite_async executions/s": (
            executions_per_s.get("aifactory_embedded"),
            executions_per_s.get("dbos_sqlite_async"),
        ),
        "aifactory_postgres / dbos_postgres_async executions/s": (
            executions_per_s.get("aifactory_postgres"),
            executions_per_s.get("dbos_postgres_async"),
        ),
    }
    return {
        name: None if (r := _ratio(a, b)) is None else round(r, 4) for name, (a, b) in pairs.items()
    }


def render(report: dict[str, Any]) -> str:
    """The report (as `run_benchmark` returns it) as a readable table."""
    env = report["environment"]
    out = io.StringIO()
    w = out.write
    w(f"Pipeline overhead: {report['stages']} no-op stages, each adding a 1 KB string\n")
    w(
        f"median of {env['repeats']} x {env['n']} runs after {env['warmup']} warm-up; "
        f"Python {env['python']}, {env['cpu_count']} CPUs, SQLite {env['sqlite']}, "
        f"langgraph {env['langgraph'] or 'not installed'}, "
        f"dbos {env.get('dbos') or 'not installed'}\n"
    )
    if env.get("state"):
        w(f"--state {env['state']}\n")
    w("\n")
    w(f"{'sequential':<32}{'per run ms':>12}{'overhead µs/stage':>20}  note\n")
    for name, m in report["sequential"].items():
        w(
            f"{name:<32}{m['per_run_ms']:>12.3f}{m['per_stage_overhead_us']:>20.1f}  "
            f"{m.get('note', '')}\n"
        )
    concurrent = report["concurrent"]
    w(f"\n{'concurrent (' + str(concurrent['concurrency']) + ' in flight)':<32}")
    w(f"{'executions/s':>12}\n")
    for name, m in concurrent["systems"].items():
        w(f"{name:<32}{m['executions_per_s']:>12.1f}  {m.get('note', '')}\n")
    w("\ntargets\n")
    for t in report["targets"]:
        ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.3f}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        w(f"  {t['name']:<68}{ratio:>9} {t['op']} {t['limit']:<5g} {verdict}\n")
    w("informative ratios (not targets)\n")
    for name, ratio in report["ratios_informative"].items():
        w(f"  {name:<68}{'n/a' if ratio is None else f'{ratio:.3f}':>9}\n")
    if report.get("statements_per_stage"):
        w("statements per stage, one run (the execution's own and a read-back included)\n")
        for name, count in report["statements_per_stage"].items():
            w(f"  {name:<68}{count:>9.2f}\n")
    if report.get("round_trips_per_stage"):
        w("round trips to PostgreSQL per stage, one run (as above; a stage commit is 2)\n")
        for name, count in report["round_trips_per_stage"].items():
            w(f"  {name:<68}{count:>9.2f}\n")
    metrics = report.get("metrics")
    if metrics:
        w("metrics on (default) beside off, µs per stage\n")
        w(
            f"  on {metrics['per_stage_us_on']:.1f}, off {metrics['per_stage_us_off']:.1f}: "
            f"costs {metrics['cost_per_stage_us']:.1f} µs, ratio {metrics['ratio_on_to_off']:.4f}"
            " (target <= 1.05)\n"
        )
        if "per_stage_us_tracing" in metrics:
            w(
                f"  with OpenTelemetry spans too {metrics['per_stage_us_tracing']:.1f}: "
                f"they cost {metrics['tracing_cost_per_stage_us']:.1f} µs more, ratio to off "
                f"{metrics['ratio_tracing_to_off']:.4f}\n"
            )
    for name, why in report["skipped"].items():
        w(f"skipped {name}: {why}\n")
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def profile_table(profiler: cProfile.Profile, stages: int, title: str, top: int) -> str:
    """The `top` functions by cumulative time, in µs (and calls) per pipeline stage."""
    stats: Any = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)
    out = io.StringIO()
    out.write(f"{title}; µs per stage, cProfile's own overhead included\n")
    out.write(f"{'cumulative':>11}{'own':>9}{'calls/stage':>12}  function\n")
    for (file, line, name), (_, calls, own, cumulative, _) in rows[:top]:
        where = f"{_short(file)}:{line}({name})" if line else name
        out.write(
            f"{cumulative / stages * 1e6:>11.1f}{own / stages * 1e6:>9.1f}"
            f"{calls / stages:>12.2f}  {where}\n"
        )
    return out.getvalue()


def _short(file: str) -> str:
    # The path from where its package starts: the last site-packages, src or stdlib folder.
    match = re.search(r".*(?:site-packages|/src|python3\.\d+)/(.*)", file)
    return match.group(1) if match else file
