// Tokenized corpora cached as binary shards, keyed by the source files (path, size, mtime) and
// the tokenizer, so a second run over the same data does not tokenize again.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mf {

// A key for `files` tokenized by a tokenizer described by `tokenizer_fingerprint`.
std::string corpus_cache_key(const std::vector<std::string>& files, const std::string& tokenizer_fingerprint);

// The default cache directory: $MOEFORGE_CACHE/tokens, else ~/.cache/moeforge/tokens.
std::string default_token_cache_dir();

struct CachedTokens {
  std::vector<int32_t> tokens;
  bool hit = false;   // read from the cache
  std::string path;   // the shard file
};

// Reads cache_dir/<key>.tokens when it is intact (magic, count and checksum all agree), else
// calls produce() and writes the shard atomically. A damaged shard is replaced, never trusted.
CachedTokens load_or_tokenize(const std::string& cache_dir, const std::string& key,
                              const std::function<std::vector<int32_t>()>& produce);

}  // namespace mf
