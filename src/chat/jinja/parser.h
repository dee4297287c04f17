// Builds the syntax tree from lexed segments. Supported statements: if/elif/else, for (with
// `if` filter, else, tuple targets), set (incl. ns.attr and block set), macro, break,
// continue, and generation blocks (rendered as their body). Anything else is an mf::Error
// naming the template position.
#pragma once
#include <string>

#include "chat/jinja/ast.h"
#include "chat/jinja/lexer.h"

namespace mf::jinja {

Body parse_template(const Lexed& lexed, const std::string& name);

}  // namespace mf::jinja
