// KVCache: per layer and per sequence, the rotated keys and the values of every token seen so
// far, laid out [capacity, n_kv_heads, head_dim] so attention reads it in place.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"

namespace mf {

class KVCache {
 public:
  // Room for `batch` sequences of up to `max_seq_len` tokens each.
  KVCache(const ModelConfig& config, int max_seq_len, int batch = 1);

  int length(int seq = 0) const;        // tokens cached for sequence `seq`
  int capacity() const { return capacity_; }
  int batch() const { return batch_; }
  void reset();                         // every sequence back to length 0
  void truncate(int seq, int len);      // keeps the first `len` tokens of `seq` (len <= length)

  // For the transformer: floats between consecutive positions, and the start of a
  // sequence's keys/values in one layer.
  int64_t stride() const { return kv_dim_; }
  float* keys(int layer, int seq);
  float* values(int layer, int seq);
  void set_length(int seq, int len);    // after appending new tokens (len <= capacity)
  int layers() const { return layers_; }

 private:
  size_t offset(int layer, int seq) const;
  int layers_, batch_, capacity_;
  int64_t kv_dim_;
  std::vector<int> lengths_;
  std::unique_ptr<float[]> keys_, values_;
};

}  // namespace mf
