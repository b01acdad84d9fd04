#!/usr/bin/env python3
"""Compares two builds of `orch_bench` on the quick-table cases, in one session.

Usage: compare_binaries.py BEFORE_BIN AFTER_BIN [SIZES] [REPS]
Build each with `cargo build --release -p benches --bin orch_bench` (the older one in a
git worktree of the older commit). Runs alternate between the two binaries, under
`chrt -f 50` so other work on the machine interrupts them less, and the table gives the
median ns per task of each and their ratio.
"""
import sys
import subprocess, json, statistics, sys
BASE=sys.argv[1]; HEAD=sys.argv[2]
shapes=["chain","fan_out_in","binary_tree","wavefront","random"]
cases=[]
sizes=sys.argv[3].split(",") if len(sys.argv)>3 else ["10000","100000"]
for c in ["8","1"]:
    for n in sizes:
        for s in shapes: cases.append(["engine",s,n,c])
for n in sizes:
    for s in shapes: cases.append(["engine",s,n,"8","bus"])
cases.append(["engine","random","100000","8","work=2000"])
cases.append(["engine","random","100000","8","work=2000","bus"])
for sub,ev in [("1","1000000"),("10","500000"),("100","100000")]: cases.append(["fanout",sub,ev])
reps=int(sys.argv[4]) if len(sys.argv)>4 else 3
print("| case | tasks | before ns/task | after ns/task | after/before | before RSS MB | after RSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|")
for case in cases:
    r={BASE:[],HEAD:[]}; rss={BASE:[],HEAD:[]}; name=None; tasks=None
    for i in range(reps):
        for b in ([BASE,HEAD] if i%2==0 else [HEAD,BASE]):
            out=subprocess.run(["chrt","-f","50",b]+case,capture_output=True,text=True).stdout.strip().splitlines()
            j=json.loads(out[-1]); r[b].append(j["ns_per_task"]); rss[b].append(j["peak_rss_bytes"]); name=j["case"]; tasks=j["tasks"]
    mb=statistics.median(r[BASE]); mh=statistics.median(r[HEAD])
    print(f"| {name} | {tasks} | {mb:.1f} | {mh:.1f} | {mh/mb:.2f} | {statistics.median(rss[BASE])/2**20:.1f} | {statistics.median(rss[HEAD])/2**20:.1f} |", flush=True)
