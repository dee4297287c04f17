#include "train/sft_inputs.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>

#include "data/token_cache.h"

namespace mf {

RenderChat chat_renderer(const ChatTemplate& tmpl) {
  return [&tmpl](const std::vector<ChatTurn>& turns, bool add_generation_prompt) {
    std::vector<ChatMessage> messages;
    messages.reserve(turns.size());
    for (const ChatTurn& t : turns) messages.push_back({t.role, t.content});
    return tmpl.render(messages, add_generation_prompt);
  };
}

SftExamples load_sft_examples(const std::vector<std::string>& files, const Tokenizer& tok, const ChatTemplate& tmpl,
                              const SftInputOptions& opts) {
  std::set<std::string> wanted;
  for (const auto& d : opts.domains) wanted.insert(domain_key(d));
  BadRecordPolicy bad(opts.skip_bad);
  std::vector<SftRecord> records;
  std::map<std::string, int> per_domain;
  int64_t read = 0;
  for (const std::string& f : files) {
    for (SftRecord& r : read_sft_jsonl(f, bad)) {
      ++read;
      if (!wanted.empty() && !wanted.count(domain_key(r.domain))) continue;
      if (opts.max_per_domain > 0 && per_domain[r.domain]++ >= opts.max_per_domain) continue;
      records.push_back(std::move(r));
    }
  }
  if (bad.skipped() > 0) {
    std::fprintf(stderr, "skipped %lld bad records, first: %s\n", (long long)bad.skipped(), bad.examples().front().c_str());
  }
  std::string domain_list;
  for (const auto& d : opts.domains) domain_list += d + " ";
  MF_CHECK(!records.empty(), "no instruction records", wanted.empty() ? "" : " of the domains ", domain_list, "in ",
           files.front(), files.size() > 1 ? " and the other files" : "");

  std::vector<std::string> domains;
  for (const auto& r : records) domains.push_back(r.domain);
  std::sort(domains.begin(), domains.end());
  domains.erase(std::unique(domains.begin(), domains.end()), domains.end());

  // Everything that changes the tokens is in the key: files, tokenizer, template, limits, and
  // the scored turns when they make a difference (so data without whole conversations keeps
  // the key, and the cache, it always had).
  std::string fingerprint =
      cat("sft:", tok.kind, ":", tok.vocab_size(), ":", tok.bos_id, ":", tok.eos_id, ":", int(tok.add_bos), ":",
          opts.tokenizer_source, ":", tmpl.source(), ":", opts.max_len, ":", domain_list, ":", opts.max_per_domain, ":",
          int(opts.skip_bad));
  if (opts.assistant_turns == AssistantTurns::all && has_scored_history(records))
    fingerprint += ":loss_on=all_assistant";
  SftTokenizeStats stats;
  bool tokenized = false;
  const CachedTokens cached =
      load_or_tokenize(default_token_cache_dir(), corpus_cache_key(files, fingerprint), [&] {
        tokenized = true;
        SftTokenizeOptions to;
        to.max_len = opts.max_len;
        to.assistant_turns = opts.assistant_turns;
        return pack_sft_examples(tokenize_sft(records, tok, chat_renderer(tmpl), to, &stats));
      });
  SftExamples ex = unpack_sft_examples(cached.tokens, domains);
  if (!opts.quiet) {
    std::fprintf(stderr, "%zu instruction examples (%lld read), %lld answer tokens of %zu; %s %s\n", ex.size(),
                 (long long)read, (long long)ex.answer_tokens(), ex.tokens.size(),
                 cached.hit ? "read from" : "tokenized, cached to", cached.path.c_str());
    if (tokenized && (stats.truncated || stats.dropped))
      std::fprintf(stderr, "  %lld cut at %d tokens, %lld dropped (prompt alone too long)\n", (long long)stats.truncated,
                   opts.max_len, (long long)stats.dropped);
  }
  MF_CHECK(ex.size() > 0, "every instruction example was longer than ", opts.max_len, " tokens");
  return ex;
}

}  // namespace mf
