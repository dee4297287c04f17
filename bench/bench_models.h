// The model shapes the benchmarks use, by name, in one place (the Python references in
// run_training_bench.py and run_cuda_bench.py build the same ones):
//   shakespeare  char-level MoE of examples/shakespeare-moe.yaml (8 experts, top-2)
//   smollm2      SmolLM2-135M (dense)
//   smollm2-moe  SmolLM2-135M with 8 experts of its MLP, top-2
//   smollm2-moe-top1  the same, top-1 with renormalised gates (what moeforge fuse writes for SmolMoE)
//   pretrain-bpe-moe  the BPE MoE of examples/pretrain-bpe-moe.yaml (4 layers, hidden 192, 8 experts
//                of 384, top-2, SmolLM2's 49,152-token vocabulary, tied embeddings)
//   moe-0.5b     a from-scratch MoE of 0.48B parameters: 12 layers, hidden 1024, 8 experts of 1408, top-2
#pragma once
#include <string>

#include "core/error.h"
#include "model/config.h"

namespace mf::bench {

inline ModelConfig model_named(const std::string& name) {
  ModelConfig c;
  c.model_type = "mixtral";
  c.top_k = 2;
  c.num_experts = 8;
  c.tie_word_embeddings = true;
  if (name == "shakespeare") {
    c.vocab_size = 69;
    c.hidden_size = 128;
    c.intermediate_size = 256;
    c.num_layers = 4;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.max_position_embeddings = 512;
  } else if (name == "smollm2" || name == "smollm2-moe" || name == "smollm2-moe-top1") {
    c.vocab_size = 49152;
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_layers = 30;
    c.num_heads = 9;
    c.num_kv_heads = 3;
    c.max_position_embeddings = 2048;
    c.rope_theta = 100000.0;
    if (name == "smollm2") {
      c.model_type = "llama";
      c.num_experts = 0;
      c.top_k = 0;
    }
    if (name == "smollm2-moe-top1") c.top_k = 1;
  } else if (name == "pretrain-bpe-moe") {
    c.vocab_size = 49152;
    c.hidden_size = 192;
    c.intermediate_size = 384;
    c.num_layers = 4;
    c.num_heads = 6;
    c.num_kv_heads = 2;
    c.max_position_embeddings = 512;
  } else if (name == "moe-0.5b") {
    c.vocab_size = 32000;
    c.hidden_size = 1024;
    c.intermediate_size = 1408;
    c.num_layers = 12;
    c.num_heads = 16;
    c.num_kv_heads = 4;
    c.max_position_embeddings = 4096;
    c.tie_word_embeddings = false;
  } else {
    fail("unknown model '", name, "' (shakespeare, smollm2, smollm2-moe, smollm2-moe-top1, pretrain-bpe-moe, moe-0.5b)");
  }
  return c;
}

}  // namespace mf::bench
