#include "chat/chat_template.h"

#include "chat/jinja/template.h"

namespace mf {

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token,
                           std::string origin)
    : source_(std::move(source)), bos_(std::move(bos_token)), eos_(std::move(eos_token)),
      tmpl_(std::make_unique<jinja::Template>(source_, std::move(origin))) {}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  jinja::List list;
  for (const auto& m : messages)
    list.push_back(jinja::Value(jinja::Dict{{"role", jinja::Value(m.role)}, {"content", jinja::Value(m.content)}}));
  jinja::Value ctx(jinja::Dict{{"messages", jinja::Value(std::move(list))},
                               {"add_generation_prompt", jinja::Value(add_generation_prompt)},
                               {"bos_token", jinja::Value(bos_)},
                               {"eos_token", jinja::Value(eos_)}});
  return tmpl_->render(ctx);
}

std::string ChatTemplate::family() const { return chat_template_family(source_); }

const std::string& default_chatml_template() {
  static const std::string t =
      "{% for message in messages %}"
      "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
      "{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  return t;
}

std::string chat_template_family(const std::string& s) {
  auto has = [&](const char* x) { return s.find(x) != std::string::npos; };
  if (has("<|im_start|>")) return "chatml";
  if (has("<|start_header_id|>")) return "llama3";
  if (has("<start_of_turn>")) return "gemma";
  if (has("<|user|>") && has("<|assistant|>")) return "zephyr";
  if (has("[INST]") && has("<<SYS>>")) return "llama2";
  if (has("[INST]")) return "mistral";
  return "unknown";
}

}  // namespace mf
