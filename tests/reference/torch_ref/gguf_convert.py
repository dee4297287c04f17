"""GGUF <-> HF-named state dicts for the llama architecture, as llama.cpp's converter lays
them out: tensor names token_embd / blk.N.* / output(_norm), Q and K rows permuted for
llama.cpp's RoPE, MoE experts stacked in 3-D ffn_*_exps tensors."""
import numpy as np
import torch


def permute_qk(w, n_head):
    """HF rows -> llama.cpp rows: within each head, the two rotate_half halves are interleaved."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w, n_head):
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _layer_names(cfg, layer, hf_prefix):
    """(gguf name, hf name) pairs for one layer's 2-D/1-D tensors (experts handled apart)."""
    g, p = f"blk.{layer}.", hf_prefix
    pairs = [(g + "attn_norm.weight", p + "input_layernorm.weight"),
             (g + "ffn_norm.weight", p + "post_attention_layernorm.weight"),
             (g + "attn_q.weight", p + "self_attn.q_proj.weight"),
             (g + "attn_k.weight", p + "self_attn.k_proj.weight"),
             (g + "attn_v.weight", p + "self_attn.v_proj.weight"),
             (g + "attn_output.weight", p + "self_attn.o_proj.weight")]
    if cfg.layer_is_moe(layer):
        pairs.append((g + "ffn_gate_inp.weight", cfg.moe_prefix(layer) + ".gate.weight"))
    else:
        pairs += [(g + "ffn_gate.weight", p + "mlp.gate_proj.weight"),
                  (g + "ffn_up.weight", p + "mlp.up_proj.weight"),
                  (g + "ffn_down.weight", p + "mlp.down_proj.weight")]
    return pairs


def write_llama_gguf(path, cfg, sd, qtype=None):
    """Writes an HF llama/mixtral state dict as a llama-arch GGUF. qtype: a
    gguf.GGMLQuantizationType for every 2-D/3-D matrix (norms stay F32), or None for F32."""
    import gguf
    assert cfg.model_type in ("llama", "mixtral", "mistral") and not cfg.qkv_bias
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(cfg.num_layers)
    w.add_context_length(cfg.raw.get("max_position_embeddings", 2048))
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_heads)
    w.add_head_count_kv(cfg.num_kv_heads)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(float(cfg.rope_theta))
    w.add_layer_norm_rms_eps(float(cfg.eps))
    if cfg.num_experts:
        w.add_expert_count(cfg.num_experts)
        w.add_expert_used_count(cfg.top_k)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])

    def add(name, t):
        a = t.detach().float().numpy().astype(np.float32)
        if qtype is not None and a.ndim >= 2:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, a)

    add("token_embd.weight", sd["model.embed_tokens.weight"])
    for layer in range(cfg.num_layers):
        for gname, hname in _layer_names(cfg, layer, f"model.layers.{layer}."):
            t = sd[hname]
            if gname.endswith("attn_q.weight"):
                t = permute_qk(t, cfg.num_heads)
            elif gname.endswith("attn_k.weight"):
                t = permute_qk(t, cfg.num_kv_heads)
            add(gname, t)
        if cfg.layer_is_moe(layer):
            m = cfg.moe_prefix(layer) + ".experts."
            for gname, hname in (("ffn_gate_exps", "w1"), ("ffn_up_exps", "w3"), ("ffn_down_exps", "w2")):
                add(f"blk.{layer}.{gname}.weight",
                    torch.stack([sd[f"{m}{e}.{hname}.weight"] for e in range(cfg.num_experts)]))
    add("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie:
        add("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def dequantized_tensors(path):
    """{gguf name: fp32 torch tensor in PyTorch dim order} and the reader (for metadata)."""
    import gguf
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        shape = [int(x) for x in reversed(list(t.shape))]
        out[t.name] = torch.from_numpy(np.array(a, dtype=np.float32)).reshape(shape)
    return out, r


def read_llama_gguf(path):
    """Reads a llama-arch GGUF into (HF config dict, HF-named fp32 state dict)."""
    from .model import Config
    tensors, r = dequantized_tensors(path)

    def scalar(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.parts[f.data[0]].tolist()[0]

    arch = bytes(r.fields["general.architecture"].parts[r.fields["general.architecture"].data[0]]).decode()
    assert arch == "llama", arch
    n_experts = scalar("llama.expert_count", 0)
    hidden = scalar("llama.embedding_length")
    heads = scalar("llama.attention.head_count")
    d = {
        "model_type": "mixtral" if n_experts else "llama",
        "vocab_size": len(r.fields["tokenizer.ggml.tokens"].data),
        "hidden_size": hidden,
        "intermediate_size": scalar("llama.feed_forward_length"),
        "num_hidden_layers": scalar("llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": scalar("llama.attention.head_count_kv", heads),
        "max_position_embeddings": scalar("llama.context_length", 2048),
        "rope_theta": scalar("llama.rope.freq_base", 10000.0),
        "rms_norm_eps": scalar("llama.attention.layer_norm_rms_epsilon", 1e-5),
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    if n_experts:
        d["num_local_experts"] = n_experts
        d["num_experts_per_tok"] = scalar("llama.expert_used_count")
    cfg = Config(d)
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"], "model.norm.weight": tensors["output_norm.weight"]}
    if "output.weight" in tensors:
        sd["lm_head.weight"] = tensors["output.weight"]
    for layer in range(cfg.num_layers):
        for gname, hname in _layer_names(cfg, layer, f"model.layers.{layer}."):
            t = tensors[gname]
            if gname.endswith("attn_q.weight"):
                t = unpermute_qk(t, cfg.num_heads)
            elif gname.endswith("attn_k.weight"):
                t = unpermute_qk(t, cfg.num_kv_heads)
            sd[hname] = t
        if cfg.layer_is_moe(layer):
            m = cfg.moe_prefix(layer) + ".experts."
            for gname, hname in (("ffn_gate_exps", "w1"), ("ffn_up_exps", "w3"), ("ffn_down_exps", "w2")):
                stacked = tensors[f"blk.{layer}.{gname}.weight"]
                for e in range(cfg.num_experts):
                    sd[f"{m}{e}.{hname}.weight"] = stacked[e]
    return d, sd
