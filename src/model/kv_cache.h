// KVCache: per layer and per sequence, the rotated keys and the values of every token seen so
// far, laid out [n_kv_heads, capacity, head_dim]: attention reads each kv head's positions in
// place as one contiguous stream (rows of all heads together would make it skip through memory). Keys and values
// are stored as F32 (the default: attention exactly as PyTorch computes it), or as F16 / BF16
// (llama.cpp's --cache-type-k/-v): half the memory, and half the bytes each decoded token reads.
#pragma once
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/attention.h"
#include "model/config.h"

namespace mf {

// The element types of a cache's keys and of its values (each F32, F16 or BF16).
struct KVCacheTypes {
  DType keys = DType::F32;
  DType values = DType::F32;
};
// "f32" / "f16" / "bf16" (any case) -> the type; mf::Error naming `what` otherwise.
DType parse_kv_cache_type(std::string_view name, std::string_view what);

class KVCache {
 public:
  // Room for `batch` sequences of up to `max_seq_len` tokens each.
  KVCache(const ModelConfig& config, int max_seq_len, int batch = 1, KVCacheTypes types = {});

  int length(int seq = 0) const;        // tokens cached for sequence `seq`
  int capacity() const { return capacity_; }
  int batch() const { return batch_; }
  KVCacheTypes types() const { return types_; }
  size_t bytes() const;                 // keys and values of every slot at full capacity
  void reset();                         // every sequence back to length 0
  void truncate(int seq, int len);      // keeps the first `len` tokens of `seq` (len <= length)
  // Makes sequence `to` hold the first n tokens of sequence `from` (n <= its length), in every
  // layer: a prompt that starts like another slot's tokens (a shared system prompt) skips them.
  void copy_prefix(int from, int to, int n);

  // For the transformer: n_kv_heads * head_dim, one sequence's keys/values in one layer (from
  // position 0, with their strides), and writing n positions from fp32 rows of kv_dim() floats
  // (converted to the cache's types) at positions [pos, pos + n), which must lie in the capacity.
  int64_t kv_dim() const { return kv_dim_; }
  CacheRows keys(int layer, int seq) const;
  CacheRows values(int layer, int seq) const;
  void write(int layer, int seq, int64_t pos, const float* k, const float* v, int64_t n);
  void set_length(int seq, int len);    // after appending new tokens (len <= capacity)
  int layers() const { return layers_; }

 private:
  size_t offset(int layer, int seq) const;  // elements
  int layers_, batch_, capacity_;
  int64_t kv_dim_, head_dim_;
  KVCacheTypes types_;
  size_t key_bytes_, value_bytes_;  // per element
  std::vector<int> lengths_;
  std::unique_ptr<uint8_t[]> keys_, values_;
};

}  // namespace mf
