#!/usr/bin/env python3
"""transformers on the HF directories moeforge wrote (gen_anchors.py): AutoModelForCausalLM must
load each one as the architecture its config names with no missing, unexpected or mismatched
weights and no custom code; AutoTokenizer must tokenize the text into the tokens moeforge used;
and the perplexity by llama.cpp's method, computed from transformers' logits in fp32, must equal
moeforge's within 1e-5 relative (both engines compute in fp32), and greedy generation must give
moeforge's continuation, and the chat template must render a conversation as moeforge does. A directory moeforge wrote as its own type (features no transformers
architecture computes) must be refused by transformers, naming the type.
usage: check_transformers.py MANIFEST.json NAME; exit status 0 when everything holds.
"""
import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

TOLERANCE = 1e-5


def perplexity(model, tokens, n_ctx):
    """llama.cpp's method from transformers' fp32 logits: non-overlapping chunks of n_ctx tokens,
    the second half of each scored; the final figure and the running one after each chunk."""
    first = n_ctx // 2
    nll, count, running = 0.0, 0, []
    with torch.no_grad():
        for i in range(len(tokens) // n_ctx):
            chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
            logits = model(torch.tensor([chunk])).logits[0].float()
            for p in range(first, n_ctx - 1):
                row = logits[p]
                mx = row.max()
                nll -= float(row[chunk[p + 1]] - mx) - math.log(torch.exp(row - mx).double().sum().item())
            count += n_ctx - 1 - first
            running.append(math.exp(nll / count))
    return math.exp(nll / count), running


def main():
    manifest, name = sys.argv[1], sys.argv[2]
    e = next(x for x in json.load(open(manifest))["hf"] if x["name"] == name)
    failures = []
    logging.set_verbosity_error()
    if e["expected_arch"] is None:
        return expect_refusal(e)
    model, info = AutoModelForCausalLM.from_pretrained(e["dir"], torch_dtype=torch.float32, output_loading_info=True)
    model.eval()
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            failures.append(f"{kind}: {list(info[kind])[:5]}")
    arch = type(model).__name__
    if arch != e["expected_arch"]:
        failures.append(f"loaded as {arch}, expected {e['expected_arch']}")
    tok = AutoTokenizer.from_pretrained(e["dir"])
    tokens = tok(open(e["text"], encoding="utf-8").read())["input_ids"]
    mf = e["moeforge_ppl"]
    if len(tokens) != mf["text_tokens"]:
        failures.append(f"{len(tokens)} tokens, moeforge {mf['text_tokens']}")

    ppl, running = perplexity(model, tokens, e["n_ctx"])
    rel = abs(ppl - mf["ppl"]) / mf["ppl"]
    worst = max(abs(a - b) / b for a, b in zip(running, mf["running_ppl"]))
    if rel > TOLERANCE or worst > TOLERANCE:
        failures.append(f"perplexity {ppl:.6f} vs moeforge {mf['ppl']:.6f}: {rel:.2e} relative (worst chunk {worst:.2e})")
    greedy = greedy_bytes(model, tok, e["prompt"])
    if not same_continuation(greedy, bytes.fromhex(e["moeforge_greedy_hex"])):
        failures.append(f"greedy continuation {greedy!r}, moeforge {bytes.fromhex(e['moeforge_greedy_hex'])!r}")
    if "chat" in e:
        c = e["chat"]
        rendered = tok.apply_chat_template([{"role": "system", "content": c["system"]},
                                            {"role": "user", "content": c["user"]}],
                                           tokenize=False, add_generation_prompt=True)
        if rendered != c["moeforge_rendered"]:
            failures.append(f"chat template renders {rendered!r}, moeforge {c['moeforge_rendered']!r}")
    print(json.dumps({"name": name, "loaded_as": arch, "tokens": len(tokens), "transformers_ppl": ppl,
                      "moeforge_ppl": mf["ppl"], "relative": rel, "worst_chunk_relative": worst,
                      "greedy": greedy.decode("utf-8", "replace")}))
    for f in failures:
        print(f"{name}: {f}", file=sys.stderr)
    return 1 if failures else 0


def expect_refusal(e):
    """A directory of moeforge's own type: transformers must refuse it by name, not run a guess."""
    try:
        model = AutoModelForCausalLM.from_pretrained(e["dir"], torch_dtype=torch.float32)
    except (ValueError, KeyError) as err:
        if e["model_type"] not in str(err):
            print(f"{e['name']}: refused, but the message does not name '{e['model_type']}': {err}", file=sys.stderr)
            return 1
        print(json.dumps({"name": e["name"], "refused": str(err).splitlines()[0][:200]}))
        return 0
    print(f"{e['name']}: transformers loaded it as {type(model).__name__} instead of refusing", file=sys.stderr)
    return 1


def greedy_bytes(model, tok, prompt):
    """12 greedy tokens after the prompt, as the bytes they decode to (moeforge prints raw bytes)."""
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id or 0)
    return tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True).encode("utf-8")


def same_continuation(greedy, moeforge):
    """A random model may stop inside a UTF-8 character: transformers then decodes U+FFFD where
    moeforge printed the raw bytes, so the texts must agree up to there; otherwise exactly."""
    cut = greedy.find("\ufffd".encode("utf-8"))
    return moeforge.startswith(greedy[:cut]) if cut >= 0 else greedy == moeforge


if __name__ == "__main__":
    sys.exit(main())
