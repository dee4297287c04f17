#!/usr/bin/env python3
"""Load test of `moeforge serve` (loopback only, bounded in time and count), with the official
`openai` client: a tiny MoE trained by `moeforge train`, 64 concurrent streaming clients for
DURATION seconds (default 60) over 8 slots and a queue of 32, so that some requests are refused
with the documented 503. Requires: every request either streams to its end or gets a 503 with
Retry-After; the server never crashes; its RSS after 1,000 requests is within 10% of its RSS
after 100. Prints one JSON line with the figures.
usage: serve_load.py WORK_DIR [DURATION_S]   ($MOEFORGE_BIN is the CLI)
"""
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time

import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import serve_client  # noqa: E402  (the tiny model and the server process)

WORK = os.path.abspath(sys.argv[1])
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
CLIENTS = 64


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    serve_client.WORK = WORK
    model = serve_client.tiny_model()
    server = serve_client.Server(model, "--parallel", "8", "--max-queue", "32", "--ctx", "256")
    client = server.client()
    lock = threading.Lock()
    counts = {"ok": 0, "503": 0, "other": 0, "tokens": 0}
    errors = []
    rss = {}
    stop_at = time.time() + DURATION

    def one(i):
        while time.time() < stop_at:
            try:
                n = 0
                for chunk in client.chat.completions.create(
                        model="model", messages=[{"role": "user", "content": f"river {i}"}], max_tokens=24,
                        temperature=0.8, seed=i, stream=True):
                    n += sum(1 for c in chunk.choices if c.delta.content)
                with lock:
                    counts["ok"] += 1
                    counts["tokens"] += n
                    done = counts["ok"]
                    if done in (100, 1000) and done not in rss:
                        rss[done] = rss_kib(server.proc.pid)
            except openai.APIStatusError as e:
                with lock:
                    if e.status_code == 503 and e.response.headers.get("retry-after") == "1":
                        counts["503"] += 1
                    else:
                        counts["other"] += 1
                        errors.append(f"{e.status_code} {e.body}")
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - any other failure is a finding
                with lock:
                    counts["other"] += 1
                    # The cause names the transport failure (reset, early close, timeout).
                    errors.append(f"{e!r} at {time.time() - start:.1f} s, cause {e.__cause__!r}")

    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(CLIENTS)))
    elapsed = time.time() - start
    alive = server.proc.poll() is None
    final_rss = rss_kib(server.proc.pid) if alive else 0
    server.proc.send_signal(signal.SIGTERM)
    rc = server.proc.wait(timeout=60)
    growth = (rss[1000] - rss[100]) / rss[100] if 100 in rss and 1000 in rss else None
    print(json.dumps({"clients": CLIENTS, "seconds": round(elapsed, 1), "completed": counts["ok"],
                      "refused_503": counts["503"], "other_errors": counts["other"], "tokens": counts["tokens"],
                      "tokens_per_s": round(counts["tokens"] / elapsed, 1), "rss_kib_after_100": rss.get(100),
                      "rss_kib_after_1000": rss.get(1000), "rss_kib_final": final_rss,
                      "rss_growth_100_to_1000": growth, "exit_status": rc}))
    failures = []
    if counts["other"]:
        failures.append(f"{counts['other']} errors other than 503: {errors[:3]}")
    if not alive:
        failures.append("the server died")
    if rc != 0:
        failures.append(f"exit status {rc} after SIGTERM")
    if growth is None:
        failures.append(f"fewer than 1,000 requests completed ({counts['ok']})")
    elif growth > 0.10:
        failures.append(f"RSS grew {growth:.1%} from 100 to 1,000 requests")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
