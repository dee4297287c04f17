#include "model/kv_cache.h"

#include "core/error.h"

namespace mf {

KVCache::KVCache(const ModelConfig& config, int max_seq_len, int batch)
    : layers_(config.num_layers),
      batch_(batch),
      capacity_(max_seq_len),
      kv_dim_(int64_t(config.num_kv_heads) * config.effective_head_dim()) {
  MF_CHECK(max_seq_len > 0, "KVCache: max_seq_len must be > 0, got ", max_seq_len);
  MF_CHECK(batch > 0, "KVCache: batch must be > 0, got ", batch);
  MF_CHECK(layers_ > 0 && kv_dim_ > 0, "KVCache: the model config has no layers or no kv heads");
  lengths_.assign(size_t(batch), 0);
  size_t n = size_t(layers_) * size_t(batch_) * size_t(capacity_) * size_t(kv_dim_);
  // Uninitialised on purpose: only positions below a sequence's length are ever read, and
  // untouched pages of a long context cost no memory.
  keys_ = std::make_unique_for_overwrite<float[]>(n);
  values_ = std::make_unique_for_overwrite<float[]>(n);
}

int KVCache::length(int seq) const {
  MF_CHECK(seq >= 0 && seq < batch_, "KVCache: sequence ", seq, " out of range [0, ", batch_, ")");
  return lengths_[size_t(seq)];
}

void KVCache::reset() { lengths_.assign(size_t(batch_), 0); }

void KVCache::truncate(int seq, int len) {
  MF_CHECK(len >= 0 && len <= length(seq), "KVCache: cannot truncate sequence ", seq, " of length ",
           length(seq), " to ", len);
  lengths_[size_t(seq)] = len;
}

void KVCache::set_length(int seq, int len) {
  length(seq);  // range check
  MF_CHECK(len >= 0 && len <= capacity_, "KVCache: length ", len, " exceeds the capacity of ", capacity_, " tokens");
  lengths_[size_t(seq)] = len;
}

size_t KVCache::offset(int layer, int seq) const {
  MF_CHECK(layer >= 0 && layer < layers_, "KVCache: layer ", layer, " out of range [0, ", layers_, ")");
  length(seq);
  return (size_t(layer) * size_t(batch_) + size_t(seq)) * size_t(capacity_) * size_t(kv_dim_);
}

float* KVCache::keys(int layer, int seq) { return keys_.get() + offset(layer, seq); }
float* KVCache::values(int layer, int seq) { return values_.get() + offset(layer, seq); }

}  // namespace mf
