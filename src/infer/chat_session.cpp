#include "infer/chat_session.h"

#include "core/error.h"

namespace mf {

ChatSession::ChatSession(LanguageModel& model, const Tokenizer& tok, const ChatTemplate& tmpl, ChatOptions opts)
    : ctx_(model), tok_(tok), tmpl_(tmpl), opts_(std::move(opts)) {}

std::vector<ChatMessage> ChatSession::messages() const {
  std::vector<ChatMessage> out;
  if (!opts_.system_prompt.empty()) out.push_back({"system", opts_.system_prompt});
  out.insert(out.end(), turns_.begin(), turns_.end());
  return out;
}

std::vector<int32_t> ChatSession::render_tokens(const std::vector<ChatMessage>& msgs) const {
  // The template writes special tokens (BOS included, if the model wants it) as text.
  return tok_.encode(tmpl_.render(msgs, /*add_generation_prompt=*/true), /*parse_special=*/true);
}

GenerateResult ChatSession::send(const std::string& user_text, const TextCallback& on_text) {
  turns_.push_back({"user", user_text});
  const int ctx_len = ctx_.context_length();
  GenerateOptions gen = opts_.generation;
  std::vector<int32_t> prompt = render_tokens(messages());
  int dropped = 0;
  // Drop whole oldest turns (never the system prompt, never the new user turn) until the
  // prompt plus the answer budget fits.
  while (int(prompt.size()) + gen.max_tokens > ctx_len && turns_.size() > 1) {
    size_t n = (turns_.size() >= 3 && turns_[0].role == "user" && turns_[1].role == "assistant") ? 2 : 1;
    turns_.erase(turns_.begin(), turns_.begin() + std::ptrdiff_t(n));
    dropped += int(n);
    prompt = render_tokens(messages());
  }
  if (dropped > 0 && notice_)
    notice_(cat("context: dropped the ", dropped, " oldest message", dropped == 1 ? "" : "s",
                " to fit ", ctx_len, " tokens (prompt ", prompt.size(), " + max ", gen.max_tokens, " new)"));
  if (int(prompt.size()) >= ctx_len) {
    turns_.pop_back();
    fail("chat: the prompt needs ", prompt.size(), " tokens but the context holds ", ctx_len,
         "; shorten the message or the system prompt, or raise --ctx");
  }
  if (int(prompt.size()) + gen.max_tokens > ctx_len) {
    gen.max_tokens = ctx_len - int(prompt.size());
    if (notice_)
      notice_(cat("context: answer limited to ", gen.max_tokens, " tokens (context ", ctx_len, ")"));
  }
  GenerateResult res;
  try {
    res = generate(ctx_, tok_, prompt, gen, on_text);
  } catch (...) {
    turns_.pop_back();
    throw;
  }
  if (res.finish_reason == "cancelled" && res.text.empty()) turns_.pop_back();
  else turns_.push_back({"assistant", res.text});
  return res;
}

void ChatSession::reset() {
  turns_.clear();
  ctx_.reset();
}

void ChatSession::set_system_prompt(std::string text) { opts_.system_prompt = std::move(text); }

void ChatSession::restore(std::string system_prompt, std::vector<ChatMessage> turns) {
  opts_.system_prompt = std::move(system_prompt);
  turns_ = std::move(turns);
}

}  // namespace mf
