"""Reference forward pass over a dict of HF-named fp32 tensors (see __init__.py)."""
import math

import torch

from . import routing as R


class Config:
    """The fields of an HF config.json that the math depends on, with HF's defaults."""

    def __init__(self, d):
        self.raw = dict(d)
        self.model_type = d["model_type"]
        self.vocab_size = d["vocab_size"]
        self.hidden_size = d["hidden_size"]
        self.intermediate_size = d.get("intermediate_size", 0)
        self.num_layers = d["num_hidden_layers"]
        self.num_heads = d["num_attention_heads"]
        self.num_kv_heads = d.get("num_key_value_heads") or self.num_heads
        self.head_dim = d.get("head_dim") or self.hidden_size // self.num_heads
        self.rope_theta = d.get("rope_theta", 10000.0)
        self.eps = d.get("rms_norm_eps", 1e-5)
        self.tie = d.get("tie_word_embeddings", False)
        qwen = self.model_type in ("qwen2", "qwen2_moe")
        self.qkv_bias = qwen or d.get("attention_bias", False)
        self.o_bias = (not qwen) and d.get("attention_bias", False)
        use_window = d.get("use_sliding_window", not qwen)
        self.sliding_window = (d.get("sliding_window") or 0) if use_window else 0
        self.num_experts, self.top_k, self.norm_topk = 0, 0, True
        self.moe_intermediate_size, self.shared_intermediate_size = 0, 0
        self.sparse_step, self.mlp_only_layers = 1, []
        if self.model_type == "mixtral":
            self.num_experts = d.get("num_local_experts", 8)
            self.top_k = d.get("num_experts_per_tok", 2)
            self.moe_intermediate_size = self.intermediate_size
        elif self.model_type == "qwen2_moe":
            self.num_experts = d.get("num_experts", 60)
            self.top_k = d.get("num_experts_per_tok", 4)
            self.moe_intermediate_size = d["moe_intermediate_size"]
            self.shared_intermediate_size = d.get("shared_expert_intermediate_size", 0)
            self.norm_topk = d.get("norm_topk_prob", False)
            self.sparse_step = d.get("decoder_sparse_step", 1)
            self.mlp_only_layers = list(d.get("mlp_only_layers") or [])
        # moeforge's routing and layer-structure keys (docs/routing.md).
        self.policy = d.get("router_policy", "softmax_topk")
        self.norm_topk = d.get("norm_topk_prob", self.norm_topk)
        self.capacity_factor = d.get("capacity_factor", 0.0)
        self.eval_capacity_factor = d.get("eval_capacity_factor", self.capacity_factor)
        self.min_capacity = d.get("min_capacity", 0)
        self.first_k_dense = d.get("first_k_dense_replace", 0)
        self.layer_experts = list(d.get("moe_layer_experts") or [])
        self.selection_bias = d.get("router_selection_bias", False)
        if self.model_type == "mixtral":
            self.shared_intermediate_size = d.get("shared_expert_intermediate_size", 0)
        self.shared_gate = self.model_type == "qwen2_moe" or d.get("shared_expert_gate", True)
        self.training = False  # evaluation capacity unless a caller says it trains

    def layer_is_moe(self, layer):
        if self.num_experts == 0 or layer in self.mlp_only_layers or layer < self.first_k_dense:
            return False
        return (layer + 1) % self.sparse_step == 0

    def experts_in_layer(self, layer):
        if not self.layer_is_moe(layer):
            return 0
        return self.layer_experts[layer] if self.layer_experts else self.num_experts

    def moe_prefix(self, layer):
        return f"model.layers.{layer}." + ("block_sparse_moe" if self.model_type == "mixtral" else "mlp")


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, positions, theta):
    """HF rotate_half RoPE on x [B, heads, T, D]; positions [T]."""
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    ang = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def linear(x, sd, name, bias=False):
    y = x @ sd[name + ".weight"].t()
    if bias:
        y = y + sd[name + ".bias"]
    return y


def attention(cfg, sd, p, x):
    B, T, _ = x.shape
    H, KV, D = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    q = linear(x, sd, p + "q_proj", cfg.qkv_bias).view(B, T, H, D).transpose(1, 2)
    k = linear(x, sd, p + "k_proj", cfg.qkv_bias).view(B, T, KV, D).transpose(1, 2)
    v = linear(x, sd, p + "v_proj", cfg.qkv_bias).view(B, T, KV, D).transpose(1, 2)
    pos = torch.arange(T)
    q, k = rope(q, pos, cfg.rope_theta), rope(k, pos, cfg.rope_theta)
    k = k.repeat_interleave(H // KV, dim=1)
    v = v.repeat_interleave(H // KV, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    i, j = pos[:, None], pos[None, :]
    allowed = j <= i
    if cfg.sliding_window:
        allowed &= j > i - cfg.sliding_window  # a query sees `sliding_window` keys, itself included
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return linear(out.transpose(1, 2).reshape(B, T, H * D), sd, p + "o_proj", cfg.o_bias)


def swiglu(x, sd, p, names=("gate_proj", "up_proj", "down_proj")):
    g, u, d = names
    return linear(torch.nn.functional.silu(linear(x, sd, p + g)) * linear(x, sd, p + u), sd, p + d)


def moe(cfg, sd, layer, x, router_out, chosen_out=None):
    """Sparse MoE FFN on x [N, hidden]: each expert runs only on its routed tokens."""
    p = cfg.moe_prefix(layer) + "."
    mixtral = cfg.model_type == "mixtral"
    logits = linear(x, sd, p + "gate")
    router_out.append(logits.clone())
    names = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
    E = cfg.experts_in_layer(layer)
    # noisy_topk routes without noise here: the reference is the evaluation path.
    policy = "topk_softmax" if cfg.policy == "noisy_topk" else cfg.policy
    factor = cfg.capacity_factor if cfg.training else cfg.eval_capacity_factor
    cap = R.capacity(policy, factor, cfg.min_capacity, x.shape[0], E, cfg.top_k)
    bias = sd[p + "gate.e_score_correction_bias"].detach().numpy() if cfg.selection_bias else None
    y, idx, _ = R.moe_combine(policy, cfg.top_k, cfg.norm_topk, cap, logits, logits,
                              lambda e, rows: swiglu(x[rows], sd, f"{p}experts.{e}.", names), bias)
    if chosen_out is not None:
        chosen_out.append(idx)
    if y is None:
        y = torch.zeros_like(x)
    if cfg.shared_intermediate_size:
        shared = swiglu(x, sd, p + "shared_expert.")
        y = y + (torch.sigmoid(linear(x, sd, p + "shared_expert_gate")) * shared if cfg.shared_gate else shared)
    return y


@torch.no_grad()
def forward(cfg, sd, ids, chosen=None):
    """ids: int64 [B, T]. Returns (logits [B, T, vocab], router logits: one [B*T, E] per MoE layer).
    chosen, if a list, receives each MoE layer's chosen experts [B*T, k] (None for expert choice)."""
    B, T = ids.shape
    x = sd["model.embed_tokens.weight"][ids]
    routers = []
    for layer in range(cfg.num_layers):
        p = f"model.layers.{layer}."
        h = rms_norm(x, sd[p + "input_layernorm.weight"], cfg.eps)
        x = x + attention(cfg, sd, p + "self_attn.", h)
        h = rms_norm(x, sd[p + "post_attention_layernorm.weight"], cfg.eps)
        if cfg.layer_is_moe(layer):
            x = x + moe(cfg, sd, layer, h.reshape(B * T, -1), routers, chosen).view(B, T, -1)
        else:
            x = x + swiglu(h, sd, p + "mlp.")
    x = rms_norm(x, sd["model.norm.weight"], cfg.eps)
    head = sd["model.embed_tokens.weight"] if cfg.tie else sd["lm_head.weight"]
    return x @ head.t(), routers


def random_state_dict(cfg, seed, std=0.08):
    """Seeded random HF-named fp32 weights for `cfg` (norm weights near 1, biases small)."""
    g = torch.Generator().manual_seed(seed)
    Hd, D = cfg.hidden_size, cfg.head_dim
    sd = {}

    def mat(name, rows, cols, scale=std):
        sd[name] = torch.randn(rows, cols, generator=g) * scale

    def vec(name, n, center=0.0, scale=0.05):
        sd[name] = center + torch.randn(n, generator=g) * scale

    def mlp(p, inter, names=("gate_proj", "up_proj", "down_proj")):
        mat(p + names[0] + ".weight", inter, Hd)
        mat(p + names[1] + ".weight", inter, Hd)
        mat(p + names[2] + ".weight", Hd, inter)

    mat("model.embed_tokens.weight", cfg.vocab_size, Hd, 0.5)
    for layer in range(cfg.num_layers):
        p = f"model.layers.{layer}."
        vec(p + "input_layernorm.weight", Hd, 1.0, 0.1)
        vec(p + "post_attention_layernorm.weight", Hd, 1.0, 0.1)
        a = p + "self_attn."
        mat(a + "q_proj.weight", cfg.num_heads * D, Hd)
        mat(a + "k_proj.weight", cfg.num_kv_heads * D, Hd)
        mat(a + "v_proj.weight", cfg.num_kv_heads * D, Hd)
        mat(a + "o_proj.weight", Hd, cfg.num_heads * D)
        if cfg.qkv_bias:
            vec(a + "q_proj.bias", cfg.num_heads * D)
            vec(a + "k_proj.bias", cfg.num_kv_heads * D)
            vec(a + "v_proj.bias", cfg.num_kv_heads * D)
        if cfg.o_bias:
            vec(a + "o_proj.bias", Hd)
        if cfg.layer_is_moe(layer):
            m = cfg.moe_prefix(layer) + "."
            E = cfg.experts_in_layer(layer)
            mat(m + "gate.weight", E, Hd, 0.5)
            if cfg.selection_bias:
                vec(m + "gate.e_score_correction_bias", E, 0.0, 0.3)
            names = ("w1", "w3", "w2") if cfg.model_type == "mixtral" else ("gate_proj", "up_proj", "down_proj")
            for e in range(E):
                mlp(f"{m}experts.{e}.", cfg.moe_intermediate_size, names)
            if cfg.shared_intermediate_size:
                mlp(m + "shared_expert.", cfg.shared_intermediate_size)
                if cfg.shared_gate:
                    mat(m + "shared_expert_gate.weight", 1, Hd, 0.3)
        else:
            mlp(p + "mlp.", cfg.intermediate_size)
    vec("model.norm.weight", Hd, 1.0, 0.1)
    if not cfg.tie:
        mat("lm_head.weight", cfg.vocab_size, Hd)
    return sd
