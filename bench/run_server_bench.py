#!/usr/bin/env python3
"""moeforge serve against llama.cpp's OpenAI server from the PyPI package llama-cpp-python[server]
on the same GGUF, same threads (moeforge both with its exact fp32 activations and with --int8,
the int8 activations llama.cpp also uses for quantized weights): time to first token, inter-token latency p50/p99 and aggregate
output tokens/s at each concurrency, engines alternated over rounds, medians reported, with the
servers' CPU time and the machine's load. One JSON line per (engine, concurrency, round) and one
summary line per (engine, concurrency).

llama-cpp-python's server decodes one request at a time (it has no slots), so at concurrency > 1
its requests queue: that is the server a pip user gets. Run it with the interop environment's
Python (scripts/setup-interop.sh; `pip install 'llama-cpp-python[server]==0.3.36'` adds the server).

usage: run_server_bench.py --model M.gguf [--moeforge build/release/moeforge] [--threads 2]
       [--concurrency 1,4,16] [--rounds 3] [--requests-per-client 2] [--max-tokens 64]
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import openai

PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how rain forms, step by step.",
           "List five facts about the Moon.", "Describe a busy market in the morning.",
           "What makes a good friend? Answer in a paragraph.", "Give advice to someone learning to cook."]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def start(engine, args, slots):
    port = free_port()
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
    if engine.startswith("moeforge"):
        cmd = [args.moeforge, "serve", "-m", args.model, "--port", str(port), "--parallel", str(slots),
               "--threads", str(args.threads), "--ctx", str(args.ctx)]
        if "int8" in engine:
            cmd.append("--int8")  # int8 activations, as llama.cpp computes quantized weights
        if "kv16" in engine:
            cmd += ["-ctk", "f16", "-ctv", "f16"]  # a 16-bit KV cache, llama.cpp's default
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--port", str(port),
               "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", str(args.ctx),
               "--verbose", "False", "--interrupt_requests", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            model = client.models.list().data[0].id
            return proc, client, model
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{engine} did not start")


def one_request(client, model, prompt, max_tokens):
    """Streams one chat answer; returns (ttft, [inter-token gaps], tokens). The stream is read
    with http.client and a minimal SSE parser rather than the openai client, whose per-chunk
    parsing would take much of the two cores the servers run on at high concurrency."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    conn = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    times = []
    tokens = None
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
            times.append(time.perf_counter())
    conn.close()
    if not times:
        return None
    gaps = [b - a for a, b in zip(times, times[1:])]
    return times[0] - t0, gaps, tokens if tokens is not None else len(times)


def measure(engine, args, concurrency, rnd):
    proc, client, model = start(engine, args, slots=max(args.slots, 1))
    try:
        one_request(client, model, "Hello", 4)  # warm-up
        load = os.getloadavg()[0]
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        jobs = [(PROMPTS[(c + r) % len(PROMPTS)]) for c in range(concurrency) for r in range(args.requests_per_client)]

        def client_loop(c):
            out = []
            for r in range(args.requests_per_client):
                out.append(one_request(client, model, PROMPTS[(c * 7 + r + rnd) % len(PROMPTS)], args.max_tokens))
            return out

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            results = [x for lst in pool.map(client_loop, range(concurrency)) for x in lst if x]
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    ttft = [r[0] for r in results]
    gaps = sorted(g for r in results for g in r[1])
    tokens = sum(r[2] for r in results)
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None  # noqa: E731
    rec = {"engine": engine, "concurrency": concurrency, "round": rnd, "requests": len(results),
           "requests_planned": len(jobs), "output_tokens": tokens, "wall_s": round(wall, 3),
           "server_cpu_s": round(cpu, 3), "aggregate_tokens_per_s": round(tokens / wall, 2),
           "ttft_p50_s": round(statistics.median(ttft), 4), "itl_p50_ms": round(1000 * pct(gaps, 0.5), 2),
           "itl_p99_ms": round(1000 * pct(gaps, 0.99), 2), "loadavg_1m_before": load}
    print(json.dumps(rec), flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--moeforge", default="build/release/moeforge")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--slots", type=int, default=16, help="moeforge --parallel (llama-cpp-python has none)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--engines", default="moeforge,moeforge-int8,moeforge-int8-kv16,llama-cpp-python",
                    help="moeforge (exact fp32 activations), moeforge-int8 (--int8), moeforge-int8-kv16 (--int8 "
                         "and an f16 KV cache, what llama.cpp runs by default), moeforge-kv16, llama-cpp-python")
    args = ap.parse_args()
    import llama_cpp
    print(json.dumps({"machine": os.uname().nodename, "cpus": os.cpu_count(), "model": args.model,
                      "threads": args.threads, "llama_cpp_python": llama_cpp.__version__,
                      "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode()[:300]}), flush=True)
    engines = args.engines.split(",")
    records = []
    for c in [int(x) for x in args.concurrency.split(",")]:
        for rnd in range(args.rounds):
            # Alternate which engine goes first from round to round.
            for e in (engines if rnd % 2 == 0 else engines[::-1]):
                records.append(measure(e, args, c, rnd))
    for c in sorted({r["concurrency"] for r in records}):
        for e in engines:
            rs = [r for r in records if r["engine"] == e and r["concurrency"] == c]
            med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
            print(json.dumps({"summary": True, "engine": e, "concurrency": c, "rounds": len(rs),
                              "aggregate_tokens_per_s": med("aggregate_tokens_per_s"), "ttft_p50_s": med("ttft_p50_s"),
                              "itl_p50_ms": med("itl_p50_ms"), "itl_p99_ms": med("itl_p99_ms"),
                              "server_cpu_s": med("server_cpu_s"), "wall_s": med("wall_s")}), flush=True)


if __name__ == "__main__":
    main()
