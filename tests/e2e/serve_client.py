#!/usr/bin/env python3
"""`moeforge serve` driven by the official `openai` Python client (tests/e2e/test_serve.cpp runs
this with the interop virtual environment's Python). It trains a tiny char-level model with
`moeforge train` (MoE, so the routes extension has experts to show), starts the real server on a
free loopback port, and checks: chat and completions, streamed and not; stop strings; seeds;
usage counts; every documented error (400 naming the field, 401, 404, 413, 503 with Retry-After,
a prompt longer than the context); logprobs; the routes extension; a client that disconnects
mid-stream frees its slot; 16 concurrent clients; a greedy answer is the same alone and beside
7 others; SIGTERM lets a request in flight finish and exits 0. With the real SmolLM2 (when
cached) the server's greedy chat answer equals `moeforge generate --chat`.
usage: serve_client.py WORK_DIR   ($MOEFORGE_BIN is the CLI); exit status 0 when all hold.
"""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import openai

BIN = os.environ["MOEFORGE_BIN"]
WORK = os.path.abspath(sys.argv[1])
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def tiny_model():
    os.makedirs(WORK, exist_ok=True)
    corpus = os.path.join(WORK, "corpus.txt")
    with open(corpus, "w") as f:
        for i in range(300):
            f.write(f"the river ran past the mill number {i % 10}. bakers sold bread at dawn.\n")
    recipe = os.path.join(WORK, "tiny.yaml")
    with open(recipe, "w") as f:
        json.dump({"model": {"init": "scratch", "config": {
            "model_type": "llama", "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
            "tie_word_embeddings": True, "moe_num_experts": 4, "moe_top_k": 2, "expert_names": ["A", "B", "C", "D"]}},
            "tokenizer": "char", "data": {"train": corpus, "valid_fraction": 0.1},
            "train": {"steps": 30, "batch": 8, "seq_len": 64, "lr": 3e-3, "warmup": 3, "eval_windows": 2},
            "output": os.path.join(WORK, "run")}, f)
    subprocess.run([BIN, "train", recipe, "--quiet"], check=True, capture_output=True)
    return os.path.join(WORK, "run", "model")


class Server:
    def __init__(self, model, *flags):
        self.proc = subprocess.Popen([BIN, "serve", "-m", model, "--port", "0", *flags], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=os.environ | {"OMP_NUM_THREADS": "1"})
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, key="none"):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120)

    def raw(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        out = r.status, dict(r.getheaders()), r.read()
        c.close()
        return out

    def metric(self, name):
        for line in self.raw("GET", "/metrics")[2].decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def expect_error(fn, status, param=None):
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        ok = e.status_code == status and (param is None or body.get("param") == param)
        return ok, f"{e.status_code} {body}"
    return False, "no error"


def main():
    model = tiny_model()
    s = Server(model, "--parallel", "8", "--ctx", "256", "--max-queue", "32")
    c = s.client()
    try:
        models = c.models.list()
        check([m.id for m in models.data] == ["model"], f"GET /v1/models lists the model ({[m.id for m in models.data]})")
        msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the river"}]
        r = c.chat.completions.create(model="model", messages=msgs, max_tokens=12, temperature=0)
        text = r.choices[0].message.content
        check(r.object == "chat.completion" and r.choices[0].finish_reason == "length" and len(text) > 0,
              f"chat completion: {text!r}, finish {r.choices[0].finish_reason}")
        check(r.usage.completion_tokens == 12 and r.usage.prompt_tokens > 0 and
              r.usage.total_tokens == r.usage.prompt_tokens + 12, f"usage {r.usage}")
        parts = []
        finish = None
        usage = None
        stream = c.chat.completions.create(model="model", messages=msgs, max_tokens=12, temperature=0, stream=True,
                                           stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for ch in chunk.choices:
                parts.append(ch.delta.content or "")
                finish = ch.finish_reason or finish
        check("".join(parts) == text and finish == "length", f"streamed chat equals the answer ({''.join(parts)!r})")
        check(usage is not None and usage.completion_tokens == 12, f"stream usage chunk {usage}")

        comp = c.completions.create(model="model", prompt="the river ran", max_tokens=10, temperature=0)
        check(comp.object == "text_completion" and comp.usage.completion_tokens == 10,
              f"completion: {comp.choices[0].text!r}")
        streamed = "".join(ch.choices[0].text for ch in c.completions.create(
            model="model", prompt="the river ran", max_tokens=10, temperature=0, stream=True) if ch.choices)
        check(streamed == comp.choices[0].text, "streamed completion equals the answer")
        # Stop strings: cut where the free answer would contain them, never emitted.
        free = c.completions.create(model="model", prompt="bakers sold", max_tokens=30, temperature=0).choices[0].text
        stop = free[3:5] if len(free) >= 5 else free[-1:]
        stopped = c.completions.create(model="model", prompt="bakers sold", max_tokens=30, temperature=0, stop=[stop])
        check(stopped.choices[0].finish_reason == "stop" and stopped.choices[0].text == free[:free.find(stop)],
              f"stop string {stop!r}: {stopped.choices[0].text!r}")
        # Seeds: the same seed gives the same sample; sampling really samples.
        a = [c.completions.create(model="model", prompt="the", max_tokens=20, temperature=1.0, seed=7).choices[0].text
             for _ in range(2)]
        b = c.completions.create(model="model", prompt="the", max_tokens=20, temperature=1.0, seed=8).choices[0].text
        check(a[0] == a[1], f"seed 7 twice gives the same text ({a[0]!r})")
        check(b != a[0], "another seed gives another text")
        lp = c.chat.completions.create(model="model", messages=msgs, max_tokens=3, temperature=0, logprobs=True,
                                       top_logprobs=2)
        content = lp.choices[0].logprobs.content
        check(len(content) == 3 and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content),
              "logprobs with top_logprobs")
        raw = s.raw("POST", "/v1/chat/completions", json.dumps(
            {"messages": msgs, "max_tokens": 2, "temperature": 0, "moeforge": {"routes": True}}).encode())
        routes = json.loads(raw[2]).get("moeforge", {}).get("routes", [])
        check(len(routes) == 2 and routes[0]["layers"][0]["experts"][0]["name"] in "ABCD",
              "routes extension: per token, per layer, named experts")

        # Errors, each with OpenAI's status and the field named.
        for what, fn, status, param in [
            ("temperature of the wrong type", lambda: c.chat.completions.create(
                model="model", messages=msgs, temperature="hot"), 400, "temperature"),
            ("n > 1", lambda: c.chat.completions.create(model="model", messages=msgs, n=2), 400, "n"),
            ("empty messages", lambda: c.chat.completions.create(model="model", messages=[]), 400, "messages"),
            ("unknown model", lambda: c.chat.completions.create(model="gpt-9", messages=msgs), 404, "model"),
            ("prompt longer than the context", lambda: c.completions.create(
                model="model", prompt="x" * 400, max_tokens=2), 400, "prompt"),
        ]:
            ok, got = expect_error(fn, status, param)
            check(ok, f"{what}: {got}")
        st, _, body = s.raw("POST", "/v1/chat/completions", b"{not json")
        check(st == 400 and b"not valid JSON" in body, f"malformed JSON: {st}")
        # Hostile nesting: 3 million levels inside the body limit, a clear 400 and a live server.
        st, _, body = s.raw("POST", "/v1/chat/completions", b'{"messages":' + b"[" * 3000000 + b"]" * 3000000 + b"}")
        check(st == 400 and b"messages[0]" in body and s.raw("GET", "/health")[0] == 200,
              f"3,000,000 nested arrays: {st}, server alive")
        st, _, body = s.raw("POST", "/v1/chat/completions", b'{"messages": "' + b"a" * (9 << 20) + b'"}')
        check(st == 413 and b"request_too_large" in body, f"a 9 MiB body: {st}")

        # A client that goes away mid-stream frees its slot at once.
        before = s.metric("moeforge_sequences_finished_total")
        cancelled = s.metric("moeforge_sequences_cancelled_total")
        sock = socket.create_connection(("127.0.0.1", s.port))
        body = json.dumps({"prompt": "the", "max_tokens": 250, "temperature": 0, "stream": True}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        sock.recv(200)
        sock.close()
        # Wait for the sequence to end (it may not even have been admitted when the socket closed).
        deadline = time.time() + 20
        while time.time() < deadline and s.metric("moeforge_sequences_finished_total") < before + 1:
            time.sleep(0.05)
        generated = s.metric("moeforge_generated_tokens_total")
        check(s.metric("moeforge_active_slots") == 0 and s.metric("moeforge_sequences_cancelled_total") == cancelled + 1,
              "a disconnect mid-stream cancels the sequence and frees the slot")

        # Batching is exact: greedy answers alone equal those beside 7 others.
        prompts = [f"the river {i}" for i in range(8)]
        alone = [c.completions.create(model="model", prompt=p, max_tokens=16, temperature=0).choices[0].text
                 for p in prompts]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda p: c.completions.create(
                model="model", prompt=p, max_tokens=16, temperature=0).choices[0].text, prompts))
        check(together == alone, "8 concurrent greedy answers equal the ones made alone")
        # 16 concurrent streaming clients (8 slots, the rest queue).
        def stream_one(i):
            out = c.chat.completions.create(model="model", messages=[{"role": "user", "content": f"q{i}"}],
                                            max_tokens=20, temperature=0.5, seed=i, stream=True)
            return sum(1 for ch in out for x in ch.choices if x.delta.content)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            counts = list(pool.map(stream_one, range(16)))
        check(all(n > 0 for n in counts), f"16 concurrent streams all answered ({counts})")
        check(s.metric("moeforge_generated_tokens_total") > generated, "metrics count generated tokens")
        met = s.raw("GET", "/metrics")[2].decode()
        check('moeforge_expert_selections_total{layer="0",expert="A"}' in met, "per-layer expert load in /metrics")
        check("moeforge_expert_copies_made_total" in met and "moeforge_expert_cache_budget_bytes 0" in met,
              "the packed experts' counters in /metrics")
        # A kept-alive connection idle past the 5 s after which client pools (httpx, Node) drop
        # theirs still answers: the client, not the server, ends it, so no request meets a
        # connection closing under it. It stays open over SIGTERM below.
        idle = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        statuses = []
        for pause in (0, 6):
            time.sleep(pause)
            idle.request("GET", "/health")
            r = idle.getresponse()
            r.read()
            statuses.append(r.status)
        check(statuses == [200, 200], f"a kept-alive connection idle for 6 s still answers ({statuses})")
    finally:
        stop_started = time.time()
        rc = s.stop()
    stop_seconds = time.time() - stop_started
    check(rc == 0, f"SIGTERM: exit status {rc}")
    check(stop_seconds < 3, f"SIGTERM does not wait for an idle kept-alive connection ({stop_seconds:.1f} s)")

    # Authentication, a full queue, and SIGTERM with a request in flight.
    s = Server(model, "--parallel", "1", "--max-queue", "0", "--api-key", "sesame")
    try:
        ok, got = expect_error(lambda: s.client("wrong").models.list(), 401)
        check(ok, f"a wrong API key: {got}")
        check(s.client("sesame").models.list().data[0].id == "model", "the right API key")
        st, _, _ = s.raw("GET", "/health")
        check(st == 200, "/health needs no key")
        good = s.client("sesame")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(lambda: good.completions.create(model="model", prompt="the", max_tokens=150,
                                                                  temperature=0)) for _ in range(4)]
            results = []
            for f in futures:
                try:
                    results.append(("ok", f.result().usage.completion_tokens))
                except openai.APIStatusError as e:
                    results.append((e.status_code, e.response.headers.get("retry-after")))
        check(any(r[0] == "ok" for r in results) and any(r == (503, "1") for r in results),
              f"one slot, no queue: the rest get 503 with Retry-After ({results})")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(lambda: good.completions.create(model="model", prompt="the", max_tokens=150,
                                                                  temperature=0))
            time.sleep(0.3)
            s.proc.send_signal(signal.SIGTERM)
            answer = pending.result()
        check(answer.usage.completion_tokens == 150, "SIGTERM lets the request in flight finish")
    finally:
        rc = s.proc.wait(timeout=60)
    check(rc == 0, f"exit status after draining: {rc}")

    smollm2 = os.path.expanduser("~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(smollm2):
        s = Server(smollm2, "--parallel", "2", "--ctx", "512")
        try:
            q = "What is the capital of France?"
            r = s.client().chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1",
                                                    messages=[{"role": "user", "content": q}], max_tokens=24,
                                                    temperature=0)
            cli = subprocess.run([BIN, "generate", "-m", smollm2, "--chat", "-p", q, "--max-tokens", "24",
                                  "--temperature", "0"], capture_output=True, check=True).stdout.decode()[:-1]
            check(r.choices[0].message.content == cli, f"SmolLM2: the server's answer equals generate --chat ({cli!r})")
        finally:
            s.stop()
    else:
        print("skip SmolLM2 is not in ~/.cache/moeforge")
    print(f"{len(FAILURES)} failures")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
