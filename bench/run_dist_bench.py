#!/usr/bin/python3
"""Distributed training benchmark (a benchmark, never a timed test): the char-level MoE of
examples/shakespeare-moe.yaml trained for a few steps on the same global batch as
  1 rank x 2 threads          (moeforge train, no mpirun)
  2 ranks x 1 thread, DP      (mpirun -np 2)
  2 ranks x 1 thread, ZeRO-1  (mpirun -np 2, dist.shard_optimizer=true)
  2 ranks x 1 thread, EP = 2  (mpirun -np 2, dist.expert_parallel=2: 4 of the 8 experts per rank)
Prints one JSON line per configuration (median tokens/s over the timed steps, all-reduce time not
hidden behind backward, floats reduced and bytes sent per step, peak RSS of every rank; with expert
parallelism also rank 0's expert all-to-all bytes and seconds per step, from metrics.jsonl) and a
summary line with 2 ranks' tokens/s as a share of 1 rank x 2 threads'.

    bench/run_dist_bench.py [--steps 12] [--bin build/release/moeforge] [--mpirun mpirun]

Every rank's peak RSS comes from /usr/bin/time -f around each rank. The global batch is
train.batch x train.grad_accum = 8 x 2 windows of 128 characters (examples/shakespeare-moe.yaml's
16 windows), so every configuration trains the same steps; the first steps are warm-up and not
timed.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RECIPE = os.path.join(ROOT, "examples", "shakespeare-moe.yaml")
WARMUP_STEPS = 2


def run_config(name, args, ranks, threads, extra_sets, workdir):
    out_dir = os.path.join(workdir, name)
    sets = ["train.batch=8", "train.grad_accum=2", f"train.steps={args.steps}", "train.eval_every=0",
            "train.eval_windows=4", "train.checkpoint_every=0", "train.warmup=2"] + extra_sets
    # Distributed runs keep the progress output: rank 0's layout line gives the values all-reduced.
    train = [args.bin, "train", RECIPE, "-o", out_dir, "--threads", str(threads)] + (["--quiet"] if ranks == 1 else [])
    for s in sets:
        train += ["--set", s]
    timed = ["/usr/bin/time", "-f", "peak_rss_kb %M"] + train
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if ranks == 1:
        cmd = timed
    else:
        cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(ranks), "-x",
               f"OMP_NUM_THREADS={threads}"] + timed
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl")) if line.strip()]
    timed_steps = records[WARMUP_STEPS:]
    rss = [int(m) / 1024 for m in re.findall(r"peak_rss_kb (\d+)", proc.stderr)]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {
        "config": name,
        "ranks": ranks,
        "threads_per_rank": threads,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed_steps),
        "steps_timed": len(timed_steps),
        "final_loss": records[-1]["loss"],
        "peak_rss_mib_per_rank": sorted(rss, reverse=True),
        "wall_s": summary["wall_s"],
    }
    if ranks > 1:
        result["comm_wait_s_per_step"] = statistics.median(r["dist_wait_s"] for r in timed_steps)
        values = int(re.search(r"\((\d+) trainable values", proc.stderr).group(1))
        result["floats_reduced_per_step"] = values
        # What a ring all-reduce (or reduce-scatter + all-gather) sends per rank: 2 (N - 1) / N x 4 bytes.
        result["bytes_sent_per_rank_per_step"] = int(2 * (ranks - 1) / ranks * 4 * values)
        result["buckets"] = records[-1]["dist_buckets"]
        result["buckets_started_in_backward"] = records[-1]["dist_buckets_in_backward"]
    if "ep_bytes_sent" in records[-1]:
        # Rank 0's rows sent to the other rank and back (forward and backward), and the time inside
        # those all-to-alls (waiting for the other rank included).
        result["expert_all_to_all_bytes_sent_per_step"] = int(statistics.median(r["ep_bytes_sent"] for r in timed_steps))
        result["expert_all_to_all_s_per_step"] = statistics.median(r["ep_exchange_s"] for r in timed_steps)
        held = int(re.search(r"(\d+) on each rank", proc.stderr).group(1))
        total = int(re.search(r"\((\d+) trainable expert values in all", proc.stderr).group(1))
        result["expert_values_held_per_rank"] = held
        result["expert_values_in_model"] = total
        # The expert gradients are summed over the ranks holding the same experts (ranks / E of them).
        replicas = ranks // int(re.search(r"group\(s\) of (\d+)", proc.stderr).group(1)) if ranks > 1 else 1
        result["bytes_sent_per_rank_per_step"] += int(2 * (replicas - 1) / replicas * 4 * held) if replicas > 1 else 0
        result["bytes_sent_per_rank_per_step"] += result["expert_all_to_all_bytes_sent_per_step"]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "moeforge"))
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--data", default=None, help="training text (default: the recipe's tinyshakespeare.txt)")
    args = ap.parse_args()
    extra = [f"data.train={os.path.abspath(args.data)}"] if args.data else []
    with tempfile.TemporaryDirectory(prefix="moeforge_dist_bench_") as work:
        results = [
            run_config("1x2", args, 1, 2, extra, work),
            run_config("2x1_dp", args, 2, 1, extra, work),
            run_config("2x1_zero1", args, 2, 1, extra + ["dist.shard_optimizer=true"], work),
            run_config("2x1_ep", args, 2, 1, extra + ["dist.expert_parallel=2"], work),
        ]
    for r in results:
        print(json.dumps(r))
    base = results[0]["tokens_per_s"]
    print(json.dumps({"summary": {r["config"]: round(r["tokens_per_s"] / base, 3) for r in results[1:]},
                      "goal": "2 ranks x 1 thread >= 0.85 of 1 rank x 2 threads"}))


if __name__ == "__main__":
    main()
