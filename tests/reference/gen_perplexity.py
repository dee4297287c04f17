#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_perplexity.cpp.

Two seeded random tiny models as HF directories with a byte-level BPE tokenizer trained by HF
`tokenizers` (a MoE whose tokenizer adds BOS through its post-processor, a dense one that adds
none) and a generated text. For each, the perplexity computed in PyTorch by llama.cpp's method
(tools/perplexity): the text tokenized once with the tokenizer's special tokens; chunks of n_ctx
tokens, each from an empty cache, the first token replaced by BOS when the tokenizer adds one;
positions n_ctx/2 .. n_ctx-2 scored against the next token, log-softmax with the maximum in fp32
and the sum of exponentials in fp64; the running estimate after each chunk; the final figure and
its error.
usage: gen_perplexity.py OUT_DIR
"""
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from tiny_bpe import train_byte_level_bpe  # noqa: E402


BASE = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "torch_dtype": "float32"}
CASES = {  # name: (config over BASE, tokenizer adds BOS, n_ctx, chunks or -1)
    "moe_bos": (dict(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=False),
                True, 32, -1),
    "dense_no_bos": (dict(model_type="llama", tie_word_embeddings=False), False, 24, 5),
}


def text():
    words = ("the river ran past seven old mills and a quiet town where bakers sold bread at dawn while "
             "children counted boats on the water").split()
    rng = np.random.default_rng(7)
    lines = []
    for i in range(60):
        lines.append(" ".join(rng.choice(words, 14)).capitalize() + f", number {i}.")
    return "\n".join(lines) + "\n"


def tokenizer(add_bos):
    return train_byte_level_bpe(text().split("\n"), 300, ["<s>", "</s>"], bos="<s>" if add_bos else None)


def reference_perplexity(cfg, sd, tokens, bos, n_ctx, max_chunks):
    n_chunk = len(tokens) // n_ctx
    if max_chunks > 0:
        n_chunk = min(n_chunk, max_chunks)
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    running = []
    for i in range(n_chunk):
        chunk = list(tokens[i * n_ctx:(i + 1) * n_ctx])
        if bos is not None:
            chunk[0] = bos
        logits, _ = torch_ref.forward(cfg, sd, torch.tensor([chunk]))
        logits = logits[0].to(torch.float32)
        for p in range(first, n_ctx - 1):
            row = logits[p]
            mx = row.max()
            sum_exp = torch.exp(row - mx).to(torch.float64).sum().item()
            lp = float(row[chunk[p + 1]] - mx) - math.log(sum_exp)
            nll -= lp
            nll2 += lp * lp
        count += n_ctx - 1 - first
        running.append(math.exp(nll / count))
    mean = nll / count
    var = nll2 / count - mean * mean
    err = math.sqrt(var / (count - 1)) if var > 0 else 0.0
    return {"ppl": math.exp(mean), "ppl_error": err * math.exp(mean), "running": running, "chunks": n_chunk,
            "scored": count}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "text.txt"), "w") as f:
        f.write(text())
    expected = {}
    for seed, (name, (over, add_bos, n_ctx, chunks)) in enumerate(CASES.items()):
        tok = tokenizer(add_bos)
        d = dict(BASE, vocab_size=tok.get_vocab_size(), **over)
        cfg = torch_ref.Config(d)
        sd = torch_ref.random_state_dict(cfg, seed=300 + seed)
        mdir = os.path.join(out, name)
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump(d, f, indent=1)
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(mdir, "model.safetensors"),
                  metadata={"format": "pt"})
        tok.save(os.path.join(mdir, "tokenizer.json"))
        tokens = tok.encode(text()).ids  # with the post-processor's BOS, as llama.cpp tokenizes
        r = reference_perplexity(cfg, sd, tokens, 0 if add_bos else None, n_ctx, chunks)
        r.update(n_ctx=n_ctx, max_chunks=chunks, text_tokens=len(tokens), add_bos=add_bos)
        expected[name] = r
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", len(CASES), "perplexity references to", out)


if __name__ == "__main__":
    main()
