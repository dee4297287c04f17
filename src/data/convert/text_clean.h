// Small text clean-ups shared by the converters.
#pragma once
#include <string>
#include <string_view>

namespace mf {

// Without leading and trailing whitespace (spaces, tabs, newlines, carriage returns).
std::string trim(std::string_view s);

// Removes Wikipedia's bracketed reference and maintenance marks ("[12]", "[citation needed]",
// "[note 1]", "[nb 2]", "[a]", "[when?]"), together with a space left dangling before
// punctuation ("word [3]." -> "word."). Other brackets ("[...]", IPA "[ˈni.ci]") stay.
std::string strip_citation_marks(std::string_view s);

}  // namespace mf
