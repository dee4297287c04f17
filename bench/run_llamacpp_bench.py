#!/usr/bin/python3
"""moeforge against llama.cpp on the same GGUF files and thread count (a benchmark, never a timed
test): prefill of a 512-token prompt and decode of 128 tokens after it, batch 1.

    bench/run_llamacpp_bench.py --llama-bench PATH/llama-bench \
        --models a.Q4_1.gguf,b.Q8_0.gguf [--moeforge build/release/moeforge] [--threads 2] [--rounds 3]

llama.cpp runs as its own benchmark tool, `llama-bench`, built from the llama.cpp source that the
PyPI package llama-cpp-python ships (docs/benchmarks.md has the build commands; on VMs whose CPU
faults on AMX instructions, build with AMX disabled): `-p 512 -n 0` gives prefill, `-p 0 -n 128
-d 512` decode at depth 512, each the mean of llama-bench's own repetitions. moeforge runs
`moeforge generate -f PROMPT -n 128 --temp 0 --ignore-eos --verbose` on a prompt of 512 tokens
(its stderr gives each phase's wall and CPU seconds), with its exact fp32 activations (the
default) and with --int8 (the int8 activations llama.cpp uses for these weight types).

Per round the engines run in rotating order; per model, the machine's read bandwidth and the
weight bytes one decode token reads come from bench_inference in the same round, giving the
decode rate the bandwidth allows. Prints one JSON line per (model, engine, round) and a summary
line per (model, engine) with medians, the ratio to llama.cpp and to the bandwidth bound.
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_env import run_timed  # noqa: E402

PROMPT_TOKENS, GEN_TOKENS = 512, 128


def run(cmd):
    """Runs cmd; returns (stdout, stderr, wall seconds, CPU seconds of the child)."""
    proc, wall, cpu = run_timed(cmd)
    return proc.stdout, proc.stderr, wall, cpu


def prompt_file(args, workdir):
    """A prose prompt cut to PROMPT_TOKENS tokens as moeforge tokenizes it for the first model
    (llama-bench draws its own prompt tokens; only the count matters for speed)."""
    text = ("The old lighthouse stood at the edge of the cliff, and every night its keeper climbed the "
            "spiral stairs to light the lamp. Ships passed far out at sea, and the keeper wrote their names "
            "in a worn leather book. ") * 40
    path = os.path.join(workdir, "prompt.txt")
    # Shrink the text until moeforge's own tokenization (BOS included) gives PROMPT_TOKENS tokens.
    words = text.split(" ")
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        with open(path, "w") as f:
            f.write(" ".join(words[:mid]))
        if count_prompt_tokens(args, path) <= PROMPT_TOKENS:
            lo = mid
        else:
            hi = mid - 1
    with open(path, "w") as f:
        f.write(" ".join(words[:lo]))
    return path, count_prompt_tokens(args, path)


def count_prompt_tokens(args, path):
    _, err, _, _ = run([args.moeforge, "generate", "-m", args.models[0], "-f", path, "-n", "0", "--temp", "0",
                        "-t", str(args.threads)])
    return int(re.search(r"prefill: (\d+) tokens", err).group(1))


def moeforge_run(args, model, prompt, engine):
    cmd = [args.moeforge, "generate", "-m", model, "-f", prompt, "-n", str(GEN_TOKENS), "--temp", "0",
           "--ignore-eos", "--verbose", "-t", str(args.threads), "--ctx", str(PROMPT_TOKENS + GEN_TOKENS + 8)]
    if "int8" in engine:
        cmd.append("--int8")
    if "kv16" in engine:
        cmd += ["-ctk", "f16", "-ctv", "f16"]  # the KV cache type llama-bench runs by default
    _, err, wall, cpu = run(cmd)
    rates = re.search(r"prefill: (\d+) tokens \(\d+ reused\), ([\d.]+) tok/s \| decode: (\d+) tokens, ([\d.]+) tok/s",
                      err)
    secs = re.search(r"prefill: ([\d.]+) s wall, ([\d.]+) s CPU \| decode: ([\d.]+) s wall, ([\d.]+) s CPU", err)
    if not rates or not secs:
        sys.exit(f"no speed line from moeforge generate:\n{err[-2000:]}")
    return {"prompt_tokens": int(rates.group(1)), "prefill_tok_s": float(rates.group(2)),
            "decode_tokens": int(rates.group(3)), "decode_tok_s": float(rates.group(4)),
            "prefill_cpu_s": float(secs.group(2)), "decode_cpu_s": float(secs.group(4)),
            "prefill_wall_s": float(secs.group(1)), "decode_wall_s": float(secs.group(3)),
            "process_wall_s": round(wall, 3), "process_cpu_s": round(cpu, 3)}


def llama_run(args, model):
    out = {}
    for phase, extra in (("prefill", ["-p", str(PROMPT_TOKENS), "-n", "0"]),
                         ("decode", ["-p", "0", "-n", str(GEN_TOKENS), "-d", str(PROMPT_TOKENS)])):
        cmd = [args.llama_bench, "-m", model, "-t", str(args.threads), "-r", str(args.llama_repetitions),
               "-o", "jsonl"] + extra
        stdout, _, wall, cpu = run(cmd)
        rec = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")][-1]
        out[f"{phase}_tok_s"] = round(rec["avg_ts"], 2)
        out[f"{phase}_stddev_tok_s"] = round(rec["stddev_ts"], 2)
        # llama-bench loads the model and warms up once per invocation; its CPU time per token is
        # not separable, so the whole invocation's CPU and wall seconds are recorded.
        out[f"{phase}_process_wall_s"] = round(wall, 3)
        out[f"{phase}_process_cpu_s"] = round(cpu, 3)
        out["build"] = f"{rec.get('build_commit', '?')} ({rec.get('cpu_info', '?')}, {rec.get('backends', '?')})"
    return out


def bandwidth(args, model):
    stdout, _, _, _ = run([args.bench_inference, "-m", model, "--prompt-tokens", "4", "--decode-tokens", "1",
                           "--repeats", "1", "--threads", str(args.threads)])
    lines = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    probes = [l for l in lines if l.get("bench") == "memory_read_bandwidth"]
    dram = probes[0]["gb_per_s"]
    bytes_per_token = probes[1]["buffer_mb"] * 1048576.0
    return {"dram_gb_s": dram, "weight_mb_per_token": round(bytes_per_token / 1e6, 1),
            "bound_tok_s": round(dram * 1e9 / bytes_per_token, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", required=True, help="comma-separated GGUF files")
    p.add_argument("--llama-bench", required=True)
    p.add_argument("--moeforge", default=os.path.join(ROOT, "build", "release", "moeforge"))
    p.add_argument("--bench-inference", default=os.path.join(ROOT, "build", "release", "bench", "bench_inference"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--llama-repetitions", type=int, default=3)
    p.add_argument("--engines", default="moeforge,moeforge-int8,llama.cpp",
                   help="moeforge (exact), moeforge-int8, moeforge-kv16 / moeforge-int8-kv16 (an f16 KV cache, "
                        "as llama.cpp keeps by default), llama.cpp")
    args = p.parse_args()
    args.models = args.models.split(",")
    engines = args.engines.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        prompt, counted = prompt_file(args, workdir)
        print(json.dumps({"prompt_tokens_moeforge": counted, "generated_tokens": GEN_TOKENS, "threads": args.threads}),
              flush=True)
        for rnd in range(args.rounds):
            for model in args.models:
                bw = bandwidth(args, model)
                order = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
                for engine in order:
                    load = os.getloadavg()[0]
                    if engine == "llama.cpp":
                        rec = llama_run(args, model)
                    else:
                        rec = moeforge_run(args, model, prompt, engine)
                    rec.update({"round": rnd, "model": os.path.basename(model), "engine": engine,
                                "loadavg_1m_before": round(load, 2), **bw})
                    print(json.dumps(rec), flush=True)
                    results.setdefault((model, engine), []).append(rec)
    for model in args.models:
        peer = results.get((model, "llama.cpp"))
        for engine in engines:
            recs = results[(model, engine)]
            med = {k: statistics.median(r[k] for r in recs) for k in ("prefill_tok_s", "decode_tok_s", "bound_tok_s")}
            summary = {"summary": os.path.basename(model), "engine": engine, "rounds": len(recs),
                       **{k: round(v, 1) for k, v in med.items()},
                       "bound_over_decode": round(med["bound_tok_s"] / med["decode_tok_s"], 2)}
            if "decode_cpu_s" in recs[0]:
                summary["decode_tok_per_cpu_s"] = round(
                    statistics.median(r["decode_tokens"] / r["decode_cpu_s"] for r in recs), 1)
                summary["prefill_tok_per_cpu_s"] = round(
                    statistics.median(r["prompt_tokens"] / r["prefill_cpu_s"] for r in recs), 1)
            if peer:
                for k in ("prefill_tok_s", "decode_tok_s"):
                    summary[f"{k.split('_')[0]}_vs_llama_cpp"] = round(
                        med[k] / statistics.median(r[k] for r in peer), 2)
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
