#!/usr/bin/python3
"""Memory and decode speed of a MoE GGUF under `--expert-cache` budgets, beside its dense
equivalent: `moeforge generate` runs, each in its own process, in an order rotated every round.

    bench/run_expert_cache_bench.py -m smolmoe-q8_0.gguf [--dense SmolLM2-135M.q8_0.gguf] \
        [--budgets 0,64,128] [--rounds 3] [--tokens 128] [--threads 2] [--prompt TEXT]

Each run generates --tokens greedy tokens (--ignore-eos) after --prompt (plain completion). A
poller reads /proc/PID/status every 10 ms and keeps the peaks of RssAnon (packed copies, buffers)
and RssFile (pages of the mapped model file). The run line has those peaks, prefill and decode tokens/s as
the CLI prints them, wall and CPU seconds, and the 1-minute load average before the run. Budgets
are MiB (0: no limit). The summary gives medians over rounds per engine.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_one(cmd):
    t0 = time.perf_counter()
    before = os.times()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_anon = peak_file = 0
    while p.poll() is None:
        a, f = status_kib(p.pid, "RssAnon"), status_kib(p.pid, "RssFile")
        if a is not None:
            peak_anon, peak_file = max(peak_anon, a), max(peak_file, f or 0)
        time.sleep(0.01)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    after = os.times()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err[-2000:]}")
    m = re.search(r"\[prefill: (\d+) tokens \(\d+ reused\), ([\d.]+) tok/s \| decode: (\d+) tokens, ([\d.]+) tok/s\]",
                  err)
    if not m:
        raise RuntimeError(f"no speed line in the output of {' '.join(cmd)}: {err[-2000:]}")
    return {"prompt_tokens": int(m[1]), "prefill_tokens_per_s": float(m[2]), "generated_tokens": int(m[3]),
            "decode_tokens_per_s": float(m[4]), "peak_rss_anon_mib": round(peak_anon / 1024, 1),
            "peak_rss_file_mib": round(peak_file / 1024, 1), "wall_s": round(wall, 2),
            "cpu_s": round((after.children_user + after.children_system)
                           - (before.children_user + before.children_system), 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-m", "--model", required=True, help="a MoE .gguf")
    p.add_argument("--dense", help="its dense equivalent (the same bytes read per token), run beside it")
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build", "release", "moeforge"))
    p.add_argument("--budgets", default="0", help="--expert-cache values in MiB, comma-separated (0: no limit)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt", default="Write a short poem about the sea, then explain how tides work.")
    args = p.parse_args()
    engines = [(f"moe expert-cache {b}", args.model, int(b)) for b in args.budgets.split(",")]
    if args.dense:
        engines.append(("dense", args.dense, 0))
    results = {name: [] for name, _, _ in engines}
    for r in range(args.rounds):
        shift = r % len(engines)
        for name, model, budget in engines[shift:] + engines[:shift]:
            cmd = [args.bin, "generate", "-m", model, "-p", args.prompt, "-n", str(args.tokens), "--temp", "0",
                   "--ignore-eos", "-t", str(args.threads), "--expert-cache", str(budget)]
            line = {"bench": "expert_cache", "engine": name, "model": os.path.basename(model),
                    "expert_cache_mib": budget, "round": r + 1, "loadavg_1m_before": os.getloadavg()[0]}
            line.update(run_one(cmd))
            results[name].append(line)
            print(json.dumps(line), flush=True)
    for name, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs)
               for k in ("decode_tokens_per_s", "prefill_tokens_per_s", "peak_rss_anon_mib", "peak_rss_file_mib",
                         "wall_s", "cpu_s")}
        print(json.dumps({"bench": "expert_cache_summary", "engine": name, "rounds": len(runs), **med}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
