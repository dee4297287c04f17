#!/usr/bin/python3
"""OpenMP wait policy under contention (a benchmark, never a timed test): moeforge's decode and
training throughput on an idle machine and with two competing busy processes on the cores, for
each way OpenMP's waiting threads can behave between parallel regions:

  libgomp-default   GOMP_SPINCOUNT=300000 (libgomp's own default: spin ~300k pauses, then sleep)
  passive           OMP_WAIT_POLICY=passive (sleep at once)
  spin-N            GOMP_SPINCOUNT=N (bounded spinning, then sleep)
  moeforge-default  nothing set. Since 2026-12-07 moeforge runs no OpenMP region (its parallel loops
                    are on its own work pool, src/core/work_pool.h), so the policies above only
                    matter for binaries built before that.

Runs, for every policy and load, `moeforge generate` (SmolLM2-135M Q4_1, a short prompt, greedy
decode of --decode-tokens) and `moeforge train` (examples/shakespeare-moe.yaml, a few steps),
alternating the policies inside each round, --rounds rounds. Prints one JSON line per run (wall
tokens/s, user+system CPU seconds, the 1-minute load average before it) and one summary line per
(workload, load, policy) with medians and the ratio of contended to idle throughput.

    bench/run_contention_bench.py [--rounds 3] [--bin build/release/moeforge] [--threads 2]
        [--policies libgomp-default,passive,spin-10000,moeforge-default]

--bin takes several binaries, comma-separated (e.g. before and after a change): each runs every
policy in every round, and the summaries are per binary.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_env import run_timed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.expanduser("~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf")
RECIPE = os.path.join(ROOT, "examples", "shakespeare-moe.yaml")


def policy_env(policy):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy == "libgomp-default":
        env["GOMP_SPINCOUNT"] = "300000"
    elif policy == "passive":
        env["OMP_WAIT_POLICY"] = "passive"
    elif policy.startswith("spin-"):
        env["GOMP_SPINCOUNT"] = policy[len("spin-"):]
    elif policy != "moeforge-default":
        sys.exit(f"unknown policy {policy}")
    return env


def decode_run(args, binary, env):
    cmd = [binary, "generate", "-m", MODEL, "-p", "Once upon a time, in a small village by the sea,",
           "-n", str(args.decode_tokens), "--temp", "0", "-t", str(args.threads)]
    proc, wall, cpu = run_timed(cmd, env)
    m = re.search(r"decode: (\d+) tokens, ([\d.]+) tok/s", proc.stderr)
    if not m:
        sys.exit(f"no decode speed in: {proc.stderr[-500:]}")
    return float(m.group(2)), wall, cpu


def train_run(args, binary, env, workdir):
    out = os.path.join(workdir, "train")
    cmd = [binary, "train", RECIPE, "-o", out, "--quiet", "--threads", str(args.threads),
           "--set", f"train.steps={args.train_steps}", "--set", "train.eval_every=0", "--set", "train.eval_windows=2",
           "--set", "train.checkpoint_every=0", "--set", "train.warmup=1"]
    _, wall, cpu = run_timed(cmd, env)
    records = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if l.strip()]
    speeds = [r["tokens_per_s"] for r in records[2:] if "tokens_per_s" in r]
    return statistics.median(speeds), wall, cpu


class Hogs:
    """Busy processes that compete for the cores (each a pure spin loop), started and stopped
    around the contended runs."""

    def __init__(self, count):
        self.count, self.procs = count, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "moeforge"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hogs", type=int, default=2)
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=8)
    p.add_argument("--policies", default="libgomp-default,passive,spin-1000,spin-10000,moeforge-default")
    p.add_argument("--workloads", default="decode,train")
    args = p.parse_args()
    policies = args.policies.split(",")
    binaries = args.bin.split(",")
    workloads = args.workloads.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for rnd in range(args.rounds):
            for load in ("idle", "contended"):
                hogs = Hogs(args.hogs if load == "contended" else 0)
                with hogs:
                    for workload in workloads:
                        for binary in binaries:
                            for policy in policies:
                                load_avg = os.getloadavg()[0]
                                env = policy_env(policy)
                                if workload == "decode":
                                    speed, wall, cpu = decode_run(args, binary, env)
                                else:
                                    speed, wall, cpu = train_run(args, binary, env, workdir)
                                rec = {"round": rnd, "workload": workload, "load": load, "binary": binary,
                                       "policy": policy, "tokens_per_s": round(speed, 1), "wall_s": round(wall, 2),
                                       "cpu_s": round(cpu, 2), "loadavg_1m_before": round(load_avg, 2),
                                       "threads": args.threads, "competing_processes": hogs.count}
                                print(json.dumps(rec), flush=True)
                                results.setdefault((workload, load, binary, policy), []).append(rec)
    for workload in workloads:
        for binary in binaries:
            for policy in policies:
                idle_runs = results[(workload, "idle", binary, policy)]
                idle = statistics.median(r["tokens_per_s"] for r in idle_runs)
                busy = statistics.median(r["tokens_per_s"] for r in results[(workload, "contended", binary, policy)])
                print(json.dumps({"summary": workload, "binary": binary, "policy": policy, "idle_tokens_per_s": idle,
                                  "contended_tokens_per_s": busy, "contended_over_idle": round(busy / idle, 3),
                                  "idle_cpu_s": statistics.median(r["cpu_s"] for r in idle_runs),
                                  "rounds": args.rounds}), flush=True)


if __name__ == "__main__":
    main()
