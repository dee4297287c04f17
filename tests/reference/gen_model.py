#!/usr/bin/env python3
"""Reference fixtures for tests/reference/test_model.cpp.

Writes seeded random tiny models as HF safetensors directories (llama tied / untied, qwen2 with
biases, mistral with a sliding window, mixtral MoE, qwen2_moe with a shared expert and a dense
layer, BF16 llama), the same llama/mixtral models as llama-arch GGUFs (Q/K permuted as
llama.cpp's converter does; one Q8_0), and for each: two token sequences, the PyTorch logits at
every position and the MoE router logits (tests/reference/torch_ref).
usage: gen_model.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402

BASE = {
    "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "torch_dtype": "float32",
}

CASES = {
    "llama_tied": dict(model_type="llama", tie_word_embeddings=True),
    "llama_untied": dict(model_type="llama", tie_word_embeddings=False, rope_theta=500000.0),
    "qwen2_bias": dict(model_type="qwen2", tie_word_embeddings=False, num_key_value_heads=1,
                       use_sliding_window=False, sliding_window=4, eos_token_id=[2, 3]),
    "mistral_window": dict(model_type="mistral", sliding_window=4),
    "mixtral_moe": dict(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2,
                        router_aux_loss_coef=0.02),
    "qwen2_moe": dict(model_type="qwen2_moe", num_hidden_layers=3, num_experts=4, num_experts_per_tok=2,
                      moe_intermediate_size=64, shared_expert_intermediate_size=96, norm_topk_prob=False,
                      decoder_sparse_step=1, mlp_only_layers=[1], use_sliding_window=False),
    "llama_bf16": dict(model_type="llama", tie_word_embeddings=False, torch_dtype="bfloat16"),
}
GGUF_CASES = {  # name: (source case, quantization or None)
    "llama_untied_gguf": ("llama_untied", None),
    "llama_tied_gguf": ("llama_tied", None),
    "llama_untied_q8_0_gguf": ("llama_untied", "Q8_0"),
    "mixtral_moe_gguf": ("mixtral_moe", None),
}
T = 9


def save_f32(path, t):
    t.detach().to(torch.float32).contiguous().numpy().tofile(path)


def write_reference(out, name, cfg, sd, ids, extra):
    logits, routers = torch_ref.forward(cfg, sd, ids)
    save_f32(os.path.join(out, name + ".logits.f32"), logits)
    for i, r in enumerate(routers):
        save_f32(os.path.join(out, f"{name}.router{i}.f32"), r)
    meta = {"tokens": ids.tolist(), "batch": ids.shape[0], "T": ids.shape[1], "vocab": cfg.vocab_size,
            "num_router_layers": len(routers), "num_experts": cfg.num_experts}
    meta.update(extra)
    with open(os.path.join(out, name + ".ref.json"), "w") as f:
        json.dump(meta, f)
    return logits


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(1234)
    models = {}
    for seed, (name, over) in enumerate(CASES.items()):
        d = dict(BASE)
        d.update(over)
        cfg = torch_ref.Config(d)
        sd = torch_ref.random_state_dict(cfg, seed=100 + seed)
        if d["torch_dtype"] == "bfloat16":
            stored = {k: v.to(torch.bfloat16) for k, v in sd.items()}
            sd = {k: v.float() for k, v in stored.items()}
        else:
            stored = sd
        mdir = os.path.join(out, name)
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump(d, f, indent=1)
        with open(os.path.join(mdir, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": d["eos_token_id"], "do_sample": True,
                       "temperature": 0.7, "top_p": 0.9}, f)
        save_file({k: v.contiguous() for k, v in stored.items()}, os.path.join(mdir, "model.safetensors"),
                  metadata={"format": "pt"})
        ids = torch.randint(0, cfg.vocab_size, (2, T), generator=g)
        write_reference(out, name, cfg, sd, ids, {"path": name})
        models[name] = (cfg, sd, ids)

    import gguf
    for name, (src, quant) in GGUF_CASES.items():
        cfg, sd, ids = models[src]
        path = os.path.join(out, name + ".gguf")
        qtype = getattr(gguf.GGMLQuantizationType, quant) if quant else None
        torch_ref.write_llama_gguf(path, cfg, sd, qtype)
        # The reference runs on what the file really holds: read back, dequantized, un-permuted.
        d, sd_back = torch_ref.read_llama_gguf(path)
        if quant is None:
            assert all(torch.equal(sd[k], sd_back[k]) for k in sd), name + ": GGUF round trip changed weights"
        write_reference(out, name, torch_ref.Config(d), sd_back, ids, {"path": name + ".gguf", "hf_source": src})
    print("wrote", len(CASES), "HF models and", len(GGUF_CASES), "GGUF files to", out)


if __name__ == "__main__":
    main()
