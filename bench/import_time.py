"""How long `import aifactory` takes, against `import httpx`, in fresh interpreters.

Each figure is the median, over `--runs` fresh `python` processes (the two modules taking
turns, so that drift in the machine touches both alike), of the time the import statement
takes inside the process: interpreter start-up is left out. The target: `import aifactory`
at most 1.5 times `import httpx`.

    python bench/import_time.py [--runs N] [--json] [--check]

Also reports what `import aifactory` loads of its heavy parts (none should be loaded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODULES = ("httpx", "aifactory")
TARGET = 1.5
#: Loaded only when first used: a remote client's import must not pay for them.
HEAVY = (
    "aifactory._embedded",
    "aifactory.orchestrator",
    "aifactory.workers",
    "aifactory.kam",
    "aifactory.state",
    "httpx",
    "feedparser",
    "jsonschema",
    "rich",
    "fsspec",
    "openai",
)

_PROBE = """
import sys, time
start = time.perf_counter()
import {module}
took = time.perf_counter() - start
heavy = [m for m in {heavy!r} if m in sys.modules]
print(took, ",".join(heavy))
"""


def _once(module: str) -> tuple[float, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), (out[1].split(",") if len(out) > 1 else [])


def measure(runs: int) -> dict[str, object]:
    """Median import times (ms), their ratio, and the heavy modules `aifactory` loaded."""
    times: dict[str, list[float]] = {m: [] for m in MODULES}
    loaded: list[str] = []
    for _ in range(runs):
        for module in MODULES:
            took, heavy = _once(module)
            times[module].append(took)
            if module == "aifactory":
                loaded = heavy
    medians = {m: statistics.median(t) * 1000 for m, t in times.items()}
    ratio = medians["aifactory"] / medians["httpx"]
    return {
        "runs": runs,
        "median_ms": {m: round(v, 1) for m, v in medians.items()},
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio <= TARGET,
        "heavy_loaded_by_import_aifactory": loaded,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="fresh processes per module (21)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args()
    report = measure(args.runs)
    if args.json:
        print(json.dumps(report))
    else:
        medians = report["median_ms"]
        assert isinstance(medians, dict)
        for module, ms in medians.items():
            print(f"import {module:<10} {ms:8.1f} ms (median of {args.runs} fresh processes)")
        print(f"aifactory / httpx  {report['ratio']:8.3f}   target <= {TARGET}")
        heavy = report["heavy_loaded_by_import_aifactory"] or "none"
        print(f"heavy modules loaded by import aifactory: {heavy}")
    return 1 if args.check and not report["met"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
