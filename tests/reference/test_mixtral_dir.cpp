// A Mixtral-layout MoE saved by moeforge (the format `fuse` writes) is read by an independent
// PyTorch implementation that knows only the Hugging Face config keys and tensor names
// (check_hf_dir.py with torch_ref), and gives moeforge's logits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fuse/router_init.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "model/save.h"
#include "model/transformer.h"

namespace fs = std::filesystem;

TEST(MixtralDir, PyTorchReadsTheSavedMoeAndAgrees) {
  const char* py = std::getenv("MOEFORGE_PYTHON");
  const char* src = std::getenv("MOEFORGE_SOURCE_DIR");
  ASSERT_TRUE(py && src) << "run through ctest";
  mf::ModelConfig c;
  c.model_type = "mixtral";
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.num_experts = 4;
  c.top_k = 2;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  c.expert_names = {"a", "b", "c", "d"};
  mf::ModelWeights w = mf::init_random_weights(c, 21, 0.08f);
  mf::init_routers_random(w, 5, 0.5f);  // decisive routers: every token picks a clear top-2
  const fs::path dir = fs::temp_directory_path() / ("moeforge_mixtral_dir_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // A small shard limit splits the weights over several files with an index, as for big models.
  mf::HfSaveOptions small_shards;
  small_shards.max_shard_bytes = 64 * 1024;
  mf::save_model_weights(w, dir.string(), small_shards);
  ASSERT_TRUE(fs::exists(dir / "model.safetensors.index.json"));

  const std::vector<int32_t> ids = {3, 17, 42, 8, 96, 0, 55, 21, 13};
  mf::Transformer t(std::move(w));
  mf::KVCache cache(t.config(), int(ids.size()));
  mf::ForwardOptions fo;
  fo.all_logits = true;
  const mf::Tensor logits = t.forward(ids, 1, cache, fo);
  std::ofstream(dir / "ids.json") << nlohmann::json(ids).dump();
  std::ofstream(dir / "logits.f32", std::ios::binary)
      .write(static_cast<const char*>(logits.raw()), std::streamsize(logits.nbytes()));
  const std::string cmd = std::string(py) + " " + src + "/tests/reference/check_hf_dir.py " + dir.string() + " " +
                          (dir / "ids.json").string() + " " + (dir / "logits.f32").string() + " 1e-4";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  fs::remove_all(dir);
}
