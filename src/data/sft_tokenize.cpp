#include "data/sft_tokenize.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "core/error.h"

namespace mf {

std::span<const int32_t> SftExamples::sequence(size_t i) const {
  return std::span<const int32_t>(tokens).subspan(size_t(offsets[i]), size_t(length(i)));
}

std::span<const uint8_t> SftExamples::mask(size_t i) const {
  return std::span<const uint8_t>(loss_mask).subspan(size_t(offsets[i]), size_t(length(i)));
}

int64_t SftExamples::answer_tokens() const {
  return std::accumulate(loss_mask.begin(), loss_mask.end(), int64_t(0));
}

const char* assistant_turns_name(AssistantTurns turns) {
  return turns == AssistantTurns::all ? "all_assistant" : "last_assistant";
}

AssistantTurns assistant_turns_from_name(const std::string& name) {
  if (name == "all_assistant") return AssistantTurns::all;
  if (name == "last_assistant") return AssistantTurns::last;
  fail("'", name, "' is not all_assistant or last_assistant");
}

namespace {

// The part of a conversation's rendered text that one scored assistant turn covers.
struct ScoredSpan {
  size_t begin, end;
};

// Each scored turn's span is what the template adds after the generation prompt of the turns
// before it: render(turns[0..k), generation prompt) is the text before the span, render(turns
// [0..k]) the text through it. Both must be prefixes of the whole conversation, or the template
// renders earlier turns differently as the conversation goes on and the span is not one piece.
std::vector<ScoredSpan> scored_spans(const std::vector<ChatTurn>& turns, const std::string& full,
                                     const RenderChat& render, bool history_too) {
  std::vector<ScoredSpan> spans;
  for (size_t k = 0; k < turns.size(); ++k) {
    const bool last = k + 1 == turns.size();
    if (turns[k].role != "assistant" || (!last && !history_too)) continue;
    std::vector<ChatTurn> upto(turns.begin(), turns.begin() + std::ptrdiff_t(k));
    const std::string prompt = render(upto, true);
    std::string through;
    if (last) {
      MF_CHECK(full.size() > prompt.size() && full.compare(0, prompt.size(), prompt) == 0,
               "chat template: the conversation with its answer does not start with the prompt rendered for "
               "generation, so the answer tokens cannot be told apart");
    } else {
      upto.push_back(turns[k]);
      through = render(upto, false);
      MF_CHECK(through.size() > prompt.size() && through.compare(0, prompt.size(), prompt) == 0 &&
                   through.size() <= full.size() && full.compare(0, through.size(), through) == 0,
               "chat template: the conversation up to its assistant turn ", k, " is not rendered as the start of the "
               "whole conversation, so that turn's tokens cannot be told apart (data.loss_on: last_assistant scores "
               "the last turn only)");
    }
    const size_t end = last ? full.size() : through.size();
    MF_CHECK(spans.empty() || prompt.size() >= spans.back().end, "chat template: assistant turn ", k,
             " starts before the turn before it ends");
    spans.push_back({prompt.size(), end});
  }
  return spans;
}

}  // namespace

void tokenize_sft_record(const SftRecord& r, const Tokenizer& tok, const RenderChat& render,
                         std::vector<int32_t>& tokens, std::vector<uint8_t>& mask, AssistantTurns assistant_turns) {
  std::vector<ChatTurn> turns = r.history;
  turns.push_back({"user", user_message(r)});
  turns.push_back({"assistant", r.output});
  const std::string full = render(turns, false);
  const bool history_too = r.loss_on_history && assistant_turns == AssistantTurns::all;
  const std::vector<ScoredSpan> spans = scored_spans(turns, full, render, history_too);
  // Every span is encoded on its own: a scored turn's tokens are then exactly the ones
  // generation would produce after the text before it, and no BPE merge crosses a boundary.
  // Spans after the first continue the text (a SentencePiece tokenizer adds no space prefix).
  const std::string_view text(full);
  size_t pos = 0;
  tokens.clear();
  mask.clear();
  for (const ScoredSpan& span : spans) {
    if (&span == &spans.front()) {
      tokens = encode_for_model(tok, text.substr(0, span.begin));
      if (tok.add_eos && !tokens.empty() && tokens.back() == tok.eos_id) tokens.pop_back();
    } else {
      const std::vector<int32_t> between = tok.encode_continuation(text.substr(pos, span.begin - pos), true);
      tokens.insert(tokens.end(), between.begin(), between.end());
    }
    mask.resize(tokens.size(), 0);
    const std::vector<int32_t> answer = tok.encode_continuation(text.substr(span.begin, span.end - span.begin), true);
    tokens.insert(tokens.end(), answer.begin(), answer.end());
    mask.resize(tokens.size(), 1);
    pos = span.end;
  }
}

bool has_scored_history(std::span<const SftRecord> records) {
  return std::any_of(records.begin(), records.end(), [](const SftRecord& r) {
    return r.loss_on_history &&
           std::any_of(r.history.begin(), r.history.end(), [](const ChatTurn& t) { return t.role == "assistant"; });
  });
}

SftExamples tokenize_sft(std::span<const SftRecord> records, const Tokenizer& tok, const RenderChat& render,
                         const SftTokenizeOptions& opts, SftTokenizeStats* stats) {
  MF_CHECK(opts.max_len >= 2, "SFT: max_len must be at least 2, got ", opts.max_len);
  SftExamples ex;
  std::map<std::string, int32_t> domain_index;
  for (const SftRecord& r : records) domain_index.emplace(r.domain, 0);
  for (auto& [name, idx] : domain_index) {
    idx = int32_t(ex.domains.size());
    ex.domains.push_back(name);
  }
  SftTokenizeStats st;
  ex.offsets.push_back(0);
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  for (const SftRecord& r : records) {
    tokenize_sft_record(r, tok, render, tokens, mask, opts.assistant_turns);
    if (int64_t(tokens.size()) > opts.max_len) {
      // A sequence of max_len tokens scores its tokens 1..max_len-1 (each predicted from the
      // one before), so it is worth keeping only if an answer token starts inside it.
      const auto first_answer = std::find(mask.begin(), mask.end(), 1) - mask.begin();
      if (first_answer >= opts.max_len) {
        ++st.dropped;
        continue;
      }
      tokens.resize(size_t(opts.max_len));
      mask.resize(size_t(opts.max_len));
      ++st.truncated;
    }
    ex.tokens.insert(ex.tokens.end(), tokens.begin(), tokens.end());
    ex.loss_mask.insert(ex.loss_mask.end(), mask.begin(), mask.end());
    ex.offsets.push_back(int64_t(ex.tokens.size()));
    ex.domain.push_back(domain_index.at(r.domain));
  }
  if (stats) *stats = st;
  return ex;
}

SftExamples slice_sft_examples(const SftExamples& ex, size_t begin, size_t end) {
  MF_CHECK(begin <= end && end <= ex.size(), "slice_sft_examples: [", begin, ", ", end, ") outside ", ex.size());
  SftExamples out;
  out.domains = ex.domains;
  const int64_t from = ex.offsets[begin], to = ex.offsets[end];
  out.tokens.assign(ex.tokens.begin() + from, ex.tokens.begin() + to);
  out.loss_mask.assign(ex.loss_mask.begin() + from, ex.loss_mask.begin() + to);
  for (size_t i = begin; i <= end; ++i) out.offsets.push_back(ex.offsets[i] - from);
  out.domain.assign(ex.domain.begin() + int64_t(begin), ex.domain.begin() + int64_t(end));
  return out;
}

// Layout: count, then per sequence: length, domain, then tokens with the mask in bit 30
// (vocabularies stay far below 2^30).
std::vector<int32_t> pack_sft_examples(const SftExamples& ex) {
  std::vector<int32_t> out;
  out.reserve(ex.tokens.size() + 2 * ex.size() + 1);
  out.push_back(int32_t(ex.size()));
  for (size_t i = 0; i < ex.size(); ++i) {
    out.push_back(int32_t(ex.length(i)));
    out.push_back(ex.domain[i]);
    const auto seq = ex.sequence(i);
    const auto m = ex.mask(i);
    for (size_t t = 0; t < seq.size(); ++t) out.push_back(seq[t] | (m[t] ? (1 << 30) : 0));
  }
  return out;
}

SftExamples unpack_sft_examples(std::span<const int32_t> packed, std::vector<std::string> domains) {
  SftExamples ex;
  ex.domains = std::move(domains);
  MF_CHECK(!packed.empty() && packed[0] >= 0, "SFT token cache: bad header");
  const size_t n = size_t(packed[0]);
  size_t pos = 1;
  ex.offsets.push_back(0);
  for (size_t i = 0; i < n; ++i) {
    MF_CHECK(pos + 2 <= packed.size(), "SFT token cache: truncated at sequence ", i);
    const int32_t len = packed[pos], dom = packed[pos + 1];
    pos += 2;
    MF_CHECK(len >= 0 && pos + size_t(len) <= packed.size() && dom >= 0 && size_t(dom) < ex.domains.size(),
             "SFT token cache: sequence ", i, " is inconsistent");
    for (int32_t t = 0; t < len; ++t) {
      const int32_t v = packed[pos + size_t(t)];
      ex.tokens.push_back(v & ~(1 << 30));
      ex.loss_mask.push_back((v >> 30) & 1);
    }
    pos += size_t(len);
    ex.offsets.push_back(int64_t(ex.tokens.size()));
    ex.domain.push_back(dom);
  }
  MF_CHECK(pos == packed.size(), "SFT token cache: ", packed.size() - pos, " trailing values");
  return ex;
}

}  // namespace mf
