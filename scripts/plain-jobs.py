#!/usr/bin/env python3
"""Plain jobs on the real stack, one at a time: `burn` (CPU-bound, reports nothing, cannot
checkpoint) on two threads and single-threaded, as Marathon apps and Chronos jobs, deadlines
tight and loose, submitted with the launcher to a stack left up by `demo --keep`. Prints one JSON
line per job: met, seconds from submission to the end, CPU-s allocated (allocation × run time;
Chronos: each run at its size), CPU-s the collector measured (Marathon), resizes, restarts,
CPU-s lost. Run it once against a stack of each policy (docs/results.md, "On the real stack"):

  target/release/demo --quick --keep --no-build --policy predictive   # prints SUPERVISOR, WORK
  python3 scripts/plain-jobs.py SUPERVISOR WORK predictive runs.jsonl
  kill -TERM <the pids it printed>; then the same with --policy static

usage: plain-jobs.py SUPERVISOR_URL WORK_DIR LABEL OUT.jsonl [CASE...]
  LAUNCHER (default target/release/launcher) and BURN (default target/release/burn, absolute)
  may be set in the environment."""
import json, os, subprocess, sys, time, urllib.request

if len(sys.argv) < 5:
    sys.exit(__doc__)
sup, work, label, out = sys.argv[1:5]
only = sys.argv[5:]
launcher = os.environ.get("LAUNCHER", "target/release/launcher")
burn = os.path.abspath(os.environ.get("BURN", "target/release/burn"))

# (name, framework, threads, CPU-s of work per run, runs, filed CPU, deadline s)
CASES = [
    ("plain-m-tight", "marathon", 2, 20, 1, 0.5, 25),
    ("plain-m-loose", "marathon", 2, 20, 1, 0.5, 60),
    ("serial-m-tight", "marathon", 1, 20, 1, 0.5, 30),
    ("serial-m-loose", "marathon", 1, 20, 1, 0.5, 60),
    ("serial-m-big", "marathon", 1, 20, 1, 1.2, 24),
    ("plain-c-tight", "chronos", 2, 4, 4, 0.5, 24),
    ("plain-c-loose", "chronos", 2, 4, 4, 0.5, 60),
    ("serial-c-tight", "chronos", 1, 4, 4, 0.5, 30),
    ("serial-c-loose", "chronos", 1, 4, 4, 0.5, 60),
    # declares five times the CPU-s it needs (run it on a stack started with --in-place)
    ("serial-m-overdeclared", "marathon", 1, 20, 1, 1.0, 40),
]
# Declared CPU-s (qos.duration) where it is not the work done.
DECLARED = {"serial-m-overdeclared": 100}


def get(path):
    with urllib.request.urlopen(sup + path, timeout=10) as r:
        return json.load(r)


def allocated(v, fw, filed):
    if fw == "chronos":
        return sum(max(r["finished_at"] - r["started_at"], 0) * (r.get("cpus") or filed)
                   for r in v.get("reports") or [])
    start = v.get("started_at")
    if start is None:
        return 0.0
    end = (v.get("phase") or {}).get("at") or time.time()
    cpus, t, total = filed, start, 0.0
    for r in v.get("resize_history") or []:
        at = min(max(r["at"], t), end)
        total += (at - t) * cpus
        t, cpus = at, r["to"]
    return total + max(end - t, 0) * cpus


for name, fw, threads, work_s, runs, filed, deadline in CASES:
    if only and name not in only:
        continue
    jid = f"{name}-{label}-{os.getpid()}"
    cmd = f"{burn} --work {work_s} --threads {threads}"
    qos = {"duration": DECLARED.get(name, work_s), "deadline": deadline, "desv_deadline": 0.1}
    if fw == "marathon":
        job = {"id": "/" + jid, "cmd": cmd, "cpus": filed, "mem": 64, "instances": 1, "qos": qos}
        creds = ["-m", f"{work}/marathon.json", "--strategy", "none"]
    else:
        job = {"name": jid, "command": cmd, "schedule": f"R{runs}//PT1S",
               "owner": "qos@example.com", "cpus": filed, "mem": 64, "qos": qos}
        creds = ["-c", f"{work}/chronos.json"]
    path = os.path.join(work, f"{jid}.json")
    with open(path, "w") as f:
        json.dump(job, f)
    t0 = time.time()
    p = subprocess.run([launcher, "-i", sup, "-j", path, "--output", "json"] + creds,
                       capture_output=True, text=True)
    try:
        uuid = json.loads(p.stdout)["uuid"]
    except (ValueError, KeyError):
        sys.exit(f"{name}: the launcher refused it: {p.stdout}{p.stderr}")
    while True:
        v = get(f"/api/v1/jobs/{uuid}")
        if v.get("cleaned_up") or time.time() - t0 > 300:
            break
        time.sleep(0.5)
    phase = v.get("phase") or {}
    row = dict(case=name, policy=label, framework=fw, state=v.get("state"), met=phase.get("met"),
               took=round((phase.get("at") or time.time()) - v["qos"]["submitted_at"], 1),
               deadline=deadline, cpu_s_allocated=round(allocated(v, fw, filed), 1),
               cpu_s_used=v.get("cpu_seconds"), resizes=v.get("resizes"),
               restarts=v.get("restarts", 0), cpu_s_lost=v.get("cpu_seconds_lost", 0.0),
               cpus=[filed] + [r["to"] for r in v.get("resize_history") or []])
    print(json.dumps(row), flush=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
