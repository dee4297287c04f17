#!/usr/bin/env python3
"""Fixtures for tests/interop/test_anchors.cpp: models written by moeforge (GGUF files and HF
directories) and moeforge's own figures on them, for llama.cpp (through llama-cpp-python) and
transformers to reproduce.

A seeded random dense Llama (HF directory: `safetensors`, a byte-level BPE tokenizer trained by
`tokenizers`) and a 4-expert MoE upcycled from it by `moeforge upcycle --noise` (experts that
differ, random routers) are converted by `moeforge convert` to every GGUF type moeforge writes;
a wider pair (rows of 256) to the K-quant mixes.
For each file: `moeforge perplexity --json` on a generated text and a greedy continuation from
`moeforge generate`; for the two HF directories, moeforge's perplexity on them. manifest.json
lists them for check_llama_cpp.py and check_transformers.py.
usage: gen_anchors.py OUT_DIR ($MOEFORGE_BIN is the CLI)
"""
import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from tiny_bpe import save_for_older_tokenizers, train_byte_level_bpe  # noqa: E402
from gen_hf_models import hf_models  # noqa: E402

OUT = os.path.abspath(sys.argv[1])
BIN = os.environ["MOEFORGE_BIN"]
N_CTX = 64
PROMPT = "the quiet river"
# A ChatML-style template with a default system turn, a loop, a filter and the generation prompt,
# for the rendering check in check_transformers.py.
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
                 "<|im_start|>system\nYou are a quiet river.<|im_end|>\n{% endif %}"
                 "<|im_start|>{{ message['role'] }}\n{{ message['content'] | trim }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TYPES = {"dense": ["f32", "q8_0"], "moe": ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]}
# K-quant mixes on models whose rows are multiples of 256 (the tiny models' 64 would fall back to
# 32-value types everywhere): a 4-layer dense model (layers 2 and 3 are llama.cpp's "more bits"
# layers), its 4-expert upcycle, and an 8-expert one (llama.cpp's Mixtral-8x rules for attn_k,
# attn_v and attn_output). The f32 files are what check_llama_quantize.py quantizes.
KQUANT_TYPES = {"kq-dense": ["f32", "q4_K_M", "q6_K"], "kq-moe": ["f32", "q4_K_M", "q6_K"], "kq-moe8": ["f32", "q4_K_M"]}
# The MoE `moeforge fuse` makes of two differently fine-tuned copies of the dense model (2 experts,
# top-1, routers from prompts; gen_hf_models.py trains and fuses them).
FUSED_TYPES = {"fused": ["f32", "q8_0"]}
EXPERTS = {"moe": 4, "kq-moe": 4, "kq-moe8": 8, "fused": 2}


def text():
    words = ("the river ran past seven old mills and a quiet town where bakers sold bread at dawn while "
             "children counted boats on the water under a grey sky").split()
    rng = np.random.default_rng(11)
    return "\n".join(" ".join(rng.choice(words, 16)) + "." for _ in range(120)) + "\n"


def dense_model(d, h=64, inter=128, layers=2):
    os.makedirs(d, exist_ok=True)
    tok = train_byte_level_bpe(text().split("\n"), 320, ["<|endoftext|>"])
    save_for_older_tokenizers(tok, os.path.join(d, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": h,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": False, "eos_token_id": 0}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "add_bos_token": False, "chat_template": CHAT_TEMPLATE}, f)
    rng = np.random.default_rng(5)
    # 0.08 at width 64, scaled by 1/sqrt(width) beyond: wider models keep the tiny one's logit scale.
    mat = lambda r, c, s=0.08 * (64 / h) ** 0.5: (rng.standard_normal((r, c)) * s).astype(np.float32)  # noqa: E731
    kv = h // 2  # 2 of 4 heads
    t = {"model.embed_tokens.weight": mat(vocab, h, 0.5), "lm_head.weight": mat(vocab, h),
         "model.norm.weight": (1 + 0.1 * rng.standard_normal(h)).astype(np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t |= {p + "input_layernorm.weight": (1 + 0.1 * rng.standard_normal(h)).astype(np.float32),
              p + "post_attention_layernorm.weight": (1 + 0.1 * rng.standard_normal(h)).astype(np.float32),
              p + "self_attn.q_proj.weight": mat(h, h), p + "self_attn.k_proj.weight": mat(kv, h),
              p + "self_attn.v_proj.weight": mat(kv, h), p + "self_attn.o_proj.weight": mat(h, h),
              p + "mlp.gate_proj.weight": mat(inter, h), p + "mlp.up_proj.weight": mat(inter, h),
              p + "mlp.down_proj.weight": mat(h, inter)}
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})


def run(*args, stderr=False):
    # One thread: these models are tiny, and OpenMP threads that spin make a busy machine crawl.
    r = subprocess.run([BIN, *args], capture_output=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        sys.exit(f"moeforge {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r.stderr if stderr else r.stdout


def main():
    os.makedirs(OUT, exist_ok=True)
    text_path = os.path.join(OUT, "text.txt")
    with open(text_path, "w") as f:
        f.write(text())
    dense_model(os.path.join(OUT, "dense"))
    run("upcycle", "-m", os.path.join(OUT, "dense"), "--experts", "4", "--top-k", "2", "--noise", "0.3",
        "--seed", "3", "-o", os.path.join(OUT, "moe"))
    dense_model(os.path.join(OUT, "kq-dense"), h=256, inter=512, layers=4)
    for experts, moe in ((4, "kq-moe"), (8, "kq-moe8")):
        run("upcycle", "-m", os.path.join(OUT, "kq-dense"), "--experts", str(experts), "--top-k", "2", "--noise", "0.3",
            "--seed", "3", "-o", os.path.join(OUT, moe))
    hf_from_runs = hf_models(run, OUT, os.path.join(OUT, "dense"), text_path, N_CTX, PROMPT)
    entries = []
    for model, types in (TYPES | KQUANT_TYPES | FUSED_TYPES).items():
        for t in types:
            gguf = os.path.join(OUT, f"{model}-{t}.gguf")
            run("convert", "-m", os.path.join(OUT, model), "-o", gguf, "--type", t)
            ppl = json.loads(run("perplexity", "-m", gguf, "-f", text_path, "-c", str(N_CTX), "--json", "--quiet"))
            # The continuation's bytes (a random model may stop inside a UTF-8 character), less the
            # one newline generate ends with.
            greedy = run("generate", "-m", gguf, "-p", PROMPT, "--max-tokens", "12", "--temperature", "0")[:-1]
            entries.append({"name": f"{model}-{t}", "gguf": gguf, "type": t, "experts": EXPERTS.get(model, 0),
                            "n_ctx": N_CTX, "text": text_path, "prompt": PROMPT, "moeforge_ppl": ppl,
                            "moeforge_greedy_hex": greedy.hex()})
    # The real model the README sets up, when it is there: a third-party GGUF with a real tokenizer.
    smollm2 = os.path.expanduser("~/.cache/moeforge/SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(smollm2):
        ppl = json.loads(run("perplexity", "-m", smollm2, "-f", text_path, "-c", "128", "--json", "--quiet"))
        greedy = run("generate", "-m", smollm2, "-p", PROMPT, "--max-tokens", "12", "--temperature", "0")[:-1]
        entries.append({"name": "smollm2-q4_1", "gguf": smollm2, "type": "q4_1", "experts": 0, "n_ctx": 128,
                        "text": text_path, "prompt": PROMPT, "moeforge_ppl": ppl, "moeforge_greedy_hex": greedy.hex()})
    hf = []
    for model in TYPES:
        d = os.path.join(OUT, model)
        ppl = json.loads(run("perplexity", "-m", d, "-f", text_path, "-c", str(N_CTX), "--json", "--quiet"))
        greedy = run("generate", "-m", d, "-p", PROMPT, "--max-tokens", "12", "--temperature", "0")[:-1]
        hf.append({"name": f"{model}-hf", "dir": d, "experts": 4 if model == "moe" else 0, "n_ctx": N_CTX,
                   "text": text_path, "prompt": PROMPT, "moeforge_ppl": ppl, "moeforge_greedy_hex": greedy.hex(),
                   "expected_arch": "MixtralForCausalLM" if model == "moe" else "LlamaForCausalLM"})
    hf += hf_from_runs
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"entries": entries, "hf": hf}, f, indent=1)
    print("wrote", len(entries), "GGUF files with moeforge's figures to", OUT)


if __name__ == "__main__":
    main()
