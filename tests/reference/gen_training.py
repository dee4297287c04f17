#!/usr/bin/env python3
"""Fixtures for tests/reference/test_training.cpp: seeded tiny models (llama with GQA and tied
embeddings, qwen2 with biases, mixtral MoE) as HF directories, two token rows with masked
targets, and the loss parts and the gradient of every parameter from PyTorch autograd (float64)
of: sum of cross-entropy over counted positions / count + lb_coef * sum of load-balancing
losses + z_coef * sum of router z-losses (aux losses over counted positions only).
usage: gen_training.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402
from torch_ref import model as M  # noqa: E402
from torch_ref import routing as R  # noqa: E402

BASE = {"vocab_size": 96, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "torch_dtype": "float32"}
CASES = {
    "llama_tied": dict(model_type="llama", tie_word_embeddings=True),
    "qwen2_bias": dict(model_type="qwen2", tie_word_embeddings=False, num_key_value_heads=1, use_sliding_window=False),
    "mixtral": dict(model_type="mixtral", tie_word_embeddings=False, num_local_experts=4, num_experts_per_tok=2),
    # Layer structure and routing policies through the whole model: a dense first layer, a
    # pyramid of 3 then 4 experts, a gated shared expert, top-k-then-softmax with capacity.
    "moe_structures": dict(model_type="mixtral", tie_word_embeddings=True, num_hidden_layers=3, num_local_experts=4,
                           num_experts_per_tok=2, first_k_dense_replace=1, moe_layer_experts=[0, 3, 4],
                           shared_expert_intermediate_size=40, router_policy="topk_softmax", capacity_factor=1.0),
    # Switch top-1 with capacity, selection biases and an ungated shared expert (residual MoE).
    "switch_residual": dict(model_type="mixtral", tie_word_embeddings=False, num_local_experts=4,
                            num_experts_per_tok=1, router_policy="switch", capacity_factor=1.25,
                            router_selection_bias=True, shared_expert_intermediate_size=32,
                            shared_expert_gate=False),
    "expert_choice": dict(model_type="mixtral", tie_word_embeddings=False, num_local_experts=4,
                          num_experts_per_tok=2, router_policy="expert_choice", capacity_factor=1.5),
}
B, T, LB, Z = 2, 9, 0.05, 0.01


def aux_losses(routers, chosen, mask):
    """Balance loss from each layer's chosen experts (none under expert choice), z-loss."""
    lb = z = torch.zeros((), dtype=torch.float64)
    for logits, idx in zip(routers, chosen):
        if idx is not None:
            lb = lb + R.balance_loss(logits, idx, mask.numpy(), logits.shape[1])
        z = z + (torch.logsumexp(logits[mask], dim=-1) ** 2).mean()
    return lb, z


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(99)
    meta = {}
    for seed, (name, over) in enumerate(CASES.items()):
        d = dict(BASE)
        d.update(over)
        cfg = torch_ref.Config(d)
        cfg.training = True  # the training capacity factor, as forward_backward uses
        sd = torch_ref.random_state_dict(cfg, seed=500 + seed)
        mdir = os.path.join(out, name)
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump(d, f, indent=1)
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(mdir, "model.safetensors"))
        ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
        targets = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
        targets[0, :3] = -1          # a prompt without loss
        targets[1, -1] = -1          # and a padded end
        leaves = {k: v.double().requires_grad_(True) for k, v in sd.items()}
        chosen = []
        logits, routers = M.forward.__wrapped__(cfg, leaves, ids, chosen)
        mask = (targets >= 0).reshape(-1)
        count = int(mask.sum())
        lm_sum = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1),
                                                   ignore_index=-1, reduction="sum")
        loss = lm_sum / count
        lb = z = torch.zeros((), dtype=torch.float64)
        if routers:
            lb, z = aux_losses(routers, chosen, mask)
            loss = loss + LB * lb + Z * z
        loss.backward()
        # Selection biases are buffers (no gradient); an expert no token reached has a zero one.
        grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).float().contiguous()
                 for k, v in leaves.items() if not k.endswith("e_score_correction_bias")}
        save_file(grads, os.path.join(out, name + ".grads.safetensors"))
        meta[name] = {"tokens": ids.tolist(), "targets": targets.tolist(), "lm_sum": float(lm_sum), "counted": count,
                      "lb": float(lb), "z": float(z), "lb_coef": LB, "z_coef": Z}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    print("gen_training:", ", ".join(f"{k} lm={v['lm_sum'] / v['counted']:.4f}" for k, v in meta.items()))


if __name__ == "__main__":
    main()
