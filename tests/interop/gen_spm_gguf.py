#!/usr/bin/env python3
"""Fixtures for tests/interop/test_spm_gguf.cpp: a tiny random Llama with a SentencePiece BPE
tokenizer (Llama-2's settings and tokenizer.json chain, from gen_spm_tokenizer.py --model-dir),
exported to GGUF by `moeforge convert` (tokenizer.ggml.model = llama, scores, token types), and
the texts to tokenize: edge cases and the first chunks of every shared dataset.
usage: gen_spm_gguf.py OUT_DIR   (MOEFORGE_BIN names the CLI)
"""
import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from gen_spm_tokenizer import dataset_texts, edge_texts, model_dir  # noqa: E402


def random_llama(d, vocab, h=64, inter=128, layers=2):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": h,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    rng = np.random.default_rng(5)
    mat = lambda r, c: (rng.standard_normal((r, c)) * 0.08).astype(np.float32)  # noqa: E731
    ones = lambda: np.ones(h, dtype=np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": mat(vocab, h), "lm_head.weight": mat(vocab, h), "model.norm.weight": ones()}
    for i in range(layers):
        p = f"model.layers.{i}."
        t |= {p + "input_layernorm.weight": ones(), p + "post_attention_layernorm.weight": ones(),
              p + "self_attn.q_proj.weight": mat(h, h), p + "self_attn.k_proj.weight": mat(h // 2, h),
              p + "self_attn.v_proj.weight": mat(h // 2, h), p + "self_attn.o_proj.weight": mat(h, h),
              p + "mlp.gate_proj.weight": mat(inter, h), p + "mlp.up_proj.weight": mat(inter, h),
              p + "mlp.down_proj.weight": mat(h, inter)}
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})


def main():
    out = sys.argv[1]
    model = os.path.join(out, "model")
    model_dir(model)
    vocab = len(json.load(open(os.path.join(model, "tokenizer.json")))["model"]["vocab"])
    random_llama(model, vocab)
    subprocess.run([os.environ["MOEFORGE_BIN"], "convert", "-m", model, "-o", os.path.join(out, "spm.gguf")],
                   check=True, capture_output=True)
    data = dataset_texts()
    texts = edge_texts() + [t for _, t in data[::8]]
    with open(os.path.join(out, "texts.json"), "w") as f:
        f.write(json.dumps(texts, ensure_ascii=False))


if __name__ == "__main__":
    main()
