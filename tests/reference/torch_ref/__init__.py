"""A small PyTorch implementation of the Llama-family math moeforge runs (llama, mistral,
qwen2 dense; mixtral and qwen2_moe MoE), written for reference tests: plain fp32, HF tensor
names, no caching. Every gen_*.py that needs model logits imports it."""
from .model import Config, forward, random_state_dict  # noqa: F401
from .gguf_convert import permute_qk, unpermute_qk, write_llama_gguf, read_llama_gguf  # noqa: F401
