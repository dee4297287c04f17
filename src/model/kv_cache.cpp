#include "model/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

#include "core/checked.h"
#include "core/error.h"
#include "kernels/cpu/quant.h"

namespace mf {

DType parse_kv_cache_type(std::string_view name, std::string_view what) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (lower == "f32") return DType::F32;
  if (lower == "f16") return DType::F16;
  if (lower == "bf16") return DType::BF16;
  fail(what, ": '", name, "' is not a KV cache type (f32, f16 or bf16)");
}

KVCache::KVCache(const ModelConfig& config, int max_seq_len, int batch, KVCacheTypes types)
    : layers_(config.num_layers),
      batch_(batch),
      capacity_(max_seq_len),
      kv_dim_(int64_t(config.num_kv_heads) * config.effective_head_dim()),
      head_dim_(config.effective_head_dim()),
      types_(types) {
  MF_CHECK(max_seq_len > 0, "KVCache: max_seq_len must be > 0, got ", max_seq_len);
  MF_CHECK(batch > 0, "KVCache: batch must be > 0, got ", batch);
  MF_CHECK(layers_ > 0 && kv_dim_ > 0, "KVCache: the model config has no layers or no kv heads");
  MF_CHECK(is_cache_type(types.keys) && is_cache_type(types.values), "KVCache: keys stored as ",
           dtype_name(types.keys), " and values as ", dtype_name(types.values), "; each must be F32, F16 or BF16");
  key_bytes_ = dtype_bytes(types.keys, 1);
  value_bytes_ = dtype_bytes(types.values, 1);
  lengths_.assign(size_t(batch), 0);
  const size_t n = checked_mul(checked_mul(checked_mul(size_t(layers_), size_t(batch_)), size_t(capacity_)),
                               size_t(kv_dim_), "KVCache: elements");
  // Uninitialised on purpose: only positions below a sequence's length are ever read, and
  // untouched pages of a long context cost no memory.
  keys_ = std::make_unique_for_overwrite<uint8_t[]>(checked_mul(n, key_bytes_, "KVCache: key bytes"));
  values_ = std::make_unique_for_overwrite<uint8_t[]>(checked_mul(n, value_bytes_, "KVCache: value bytes"));
}

size_t KVCache::bytes() const {
  return size_t(layers_) * size_t(batch_) * size_t(capacity_) * size_t(kv_dim_) * (key_bytes_ + value_bytes_);
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

void KVCache::copy_prefix(int from, int to, int n) {
  MF_CHECK(n >= 0 && n <= length(from), "KVCache: cannot copy ", n, " tokens of sequence ", from, " of length ",
           length(from));
  length(to);  // range check
  if (from == to) return truncate(to, n);
  const size_t heads = size_t(kv_dim_ / head_dim_), head_elems = size_t(capacity_) * size_t(head_dim_);
  const size_t count = size_t(n) * size_t(head_dim_);
  for (int layer = 0; layer < layers_; ++layer)
    for (size_t h = 0; h < heads; ++h) {
      const size_t src = offset(layer, from) + h * head_elems, dst = offset(layer, to) + h * head_elems;
      std::memcpy(keys_.get() + dst * key_bytes_, keys_.get() + src * key_bytes_, count * key_bytes_);
      std::memcpy(values_.get() + dst * value_bytes_, values_.get() + src * value_bytes_, count * value_bytes_);
    }
  lengths_[size_t(to)] = n;
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

CacheRows KVCache::keys(int layer, int seq) const {
  return {keys_.get() + offset(layer, seq) * key_bytes_, types_.keys, head_dim_, int64_t(capacity_) * head_dim_};
}

CacheRows KVCache::values(int layer, int seq) const {
  return {values_.get() + offset(layer, seq) * value_bytes_, types_.values, head_dim_, int64_t(capacity_) * head_dim_};
}

void KVCache::write(int layer, int seq, int64_t pos, const float* k, const float* v, int64_t n) {
  MF_CHECK(pos >= 0 && n >= 0 && pos + n <= capacity_, "KVCache: positions [", pos, ", ", pos + n,
           ") outside the capacity of ", capacity_, " tokens");
  const size_t base = offset(layer, seq), heads = size_t(kv_dim_ / head_dim_), d = size_t(head_dim_);
  auto store = [&](DType type, size_t elem_bytes, uint8_t* data, const float* src) {
    for (int64_t r = 0; r < n; ++r)
      for (size_t h = 0; h < heads; ++h) {
        const size_t at = base + h * size_t(capacity_) * d + size_t(pos + r) * d;
        // Rounded to nearest even, as torch's .half() / .bfloat16() round.
        quantize_row(type, src + size_t(r) * size_t(kv_dim_) + h * d, data + at * elem_bytes, int64_t(d));
      }
  };
  store(types_.keys, key_bytes_, keys_.get(), k);
  store(types_.values, value_bytes_, values_.get(), v);
}

}  // namespace mf
