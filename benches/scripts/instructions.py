#!/usr/bin/env python3
"""Counts the instructions a run of the engine executes per task, under callgrind.

Usage: instructions.py BIN [BIN...] [-- CASE...]
Each BIN is a build of `orch_bench` (`cargo build --release -p benches --bin orch_bench`,
an older one in a git worktree of the older commit). A CASE is `SHAPE TASKS MAX_CONCURRENT`
as one argument (default: the no-op shapes at 10,000 tasks and a limit of 1). Only the
run itself counts (callgrind collects inside `orch_engine::run::execute`), not building
the workflow. Unlike wall time on a busy machine, the counts are the same run after run,
so small changes show; they say nothing about cache misses or waiting for other threads.
Needs valgrind (`apt-get install valgrind`).
"""
import json
import re
import subprocess
import sys
import tempfile

args = sys.argv[1:]
bins, cases = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
if not bins:
    sys.exit(__doc__)
cases = cases or [f"{shape} 10000 1" for shape in ["chain", "fan_out_in", "binary_tree", "wavefront", "random"]]


def per_task(binary, case):
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
             "--toggle-collect=*orch_engine*run*execute*", binary, "engine", *case.split()],
            capture_output=True, text=True, check=True,
        )
    collected = re.search(r"Collected : (\d+)", run.stderr)
    line = json.loads(run.stdout.strip().splitlines()[-1])
    runs = 5  # orch_bench runs each case five times
    return int(collected.group(1)) / (runs * line["tasks"])


print("| case | " + " | ".join(bins) + " |")
print("|---|" + "---:|" * len(bins))
for case in cases:
    counts = [per_task(b, case) for b in bins]
    print(f"| {case} | " + " | ".join(f"{c:.0f}" for c in counts) + " |", flush=True)
