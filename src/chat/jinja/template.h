// A parsed Jinja2 template (the subset chat templates use) and its renderer.
//
//   jinja::Template t(source, "tokenizer_config.json:chat_template");
//   std::string text = t.render(context);   // context: a Dict of variables
//
// Whitespace handling matches Jinja2 with trim_blocks and lstrip_blocks, as transformers
// renders chat templates. Parse and render errors are mf::Error naming "name:line:col".
#pragma once
#include <memory>
#include <string>

#include "chat/jinja/ast.h"
#include "chat/jinja/value.h"

namespace mf::jinja {

class Template {
 public:
  Template(std::string source, std::string name = "template");
  // `context` must be a dict; its keys become top-level variables next to the globals
  // range, namespace, dict, raise_exception and strftime_now.
  std::string render(const Value& context) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;          // as given
  std::string normalised_;      // what positions refer to
  std::string name_;
  std::shared_ptr<const Body> body_;
};

}  // namespace mf::jinja
