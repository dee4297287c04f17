// The BPE merge loop of HF `tokenizers`: the adjacent pair with the lowest merge rank merges
// first, the leftmost among equal ranks. Shared by byte-level BPE (symbols = bytes) and
// SentencePiece BPE from tokenizer.json (symbols = characters).
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace mf {

struct BpeMerge {
  int32_t rank;
  int32_t result;
};

class BpeMergeTable {
 public:
  void add(int32_t left, int32_t right, BpeMerge m) { table_.emplace(key(left, right), m); }  // first wins
  const BpeMerge* find(int32_t left, int32_t right) const {
    auto it = table_.find(key(left, right));
    return it == table_.end() ? nullptr : &it->second;
  }
  void reserve(size_t n) { table_.reserve(n); }

 private:
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::unordered_map<uint64_t, BpeMerge> table_;
};

// Merges `ids` in place until no adjacent pair has a merge.
void merge_by_rank(std::vector<int32_t>& ids, const BpeMergeTable& merges);

}  // namespace mf
