"""Instructions per stage of the no-op pipeline, counted by valgrind's callgrind: a figure
that does not move with what else the machine is doing (`pipeline_overhead.py`'s times do).

Each system (a name `pipeline_overhead.py` knows, e.g. `aifactory_embedded` and its
`_metrics_off` and `_tracing` variants) runs `--small` and then `--large` executions of the
5-stage pipeline under callgrind, in processes of their own (all at once); the difference
between the two totals, over the stages between them, is the system's instructions per
stage, start-up and warm-up excluded. Every thread counts (the store's too).

    python bench/stage_instructions.py [SYSTEM ...] [--small 10] [--large 60] [--json]

Prints each system's instructions per stage and its ratio to the first system named;
needs `valgrind` (Debian's package).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = 5
DEFAULT = ["aifactory_embedded_metrics_off", "aifactory_embedded", "aifactory_embedded_tracing"]

#: What each callgrind process runs: `count` executions of the no-op pipeline.
RUN = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {bench!r})
import anyio
from pipeline_overhead import _embedded, aifactory_run

async def main() -> None:
    with tempfile.TemporaryDirectory() as folder, _embedded({system!r}, Path(folder), 4) as o:
        run = aifactory_run(o, cache=False)
        for _ in range({count}):
            await run()

anyio.run(main)
"""


def _total(out: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(found[1])


def measure(systems: list[str], small: int, large: int) -> dict[str, int]:
    """Instructions per stage of each system."""
    with tempfile.TemporaryDirectory() as folder:
        runs = {}
        for system in systems:
            for count in (small, large):
                out = Path(folder) / f"{system}.{count}.out"
                code = RUN.format(bench=str(HERE), system=system, count=count)
                command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                runs[system, count] = (
                    subprocess.Popen(
                        [*command, sys.executable, "-c", code],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                    out,
                )
        for (system, count), (process, _) in runs.items():
            _, said = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"{system} x{count} failed: {said[-2000:]}")
        return {
            system: (_total(runs[system, large][1]) - _total(runs[system, small][1]))
            // ((large - small) * STAGES)
            for system in systems
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("systems", nargs="*", default=DEFAULT)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    counts = measure(args.systems, args.small, args.large)
    first = counts[args.systems[0]]
    if args.json:
        print(json.dumps({"instructions_per_stage": counts, "baseline": args.systems[0]}))
        return 0
    for system, count in counts.items():
        print(f"{system:<36}{count:>12,} instructions/stage  {count / first:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
