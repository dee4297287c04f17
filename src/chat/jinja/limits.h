// The bounds a chat template from a stranger's model file is held to. Parsing and rendering
// refuse anything past them with an error naming the template position, instead of running
// out of stack (deep nesting), memory (huge repetitions) or time (runaway loops). Real chat
// templates stay far inside every one of them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mf::jinja {

inline constexpr int kMaxStatementNesting = 100;     // {% if %} / {% for %} / ... inside each other
inline constexpr int kMaxExpressionNesting = 100;    // brackets and unary operators inside each other
inline constexpr int kMaxExpressionHeight = 400;     // syntax-tree height of one expression (a+b+c+... too)
inline constexpr int kMaxMacroDepth = 64;            // macro calls inside each other at render time
inline constexpr int64_t kMaxRenderSteps = 2'000'000;  // statements, expressions, loop iterations of one render
inline constexpr size_t kMaxOutputBytes = size_t(16) << 20;  // rendered text of one render
inline constexpr size_t kMaxValueBytes = size_t(4) << 20;    // any one string a template makes
inline constexpr size_t kMaxListItems = 1'000'000;           // any one list a template makes
inline constexpr size_t kMaxIteratedChars = 1'000'000;       // a string iterated character by character
inline constexpr int64_t kMaxIndent = 1024;                  // indent / tojson indent width
// Lists and dicts inside each other in any value (a template can nest one level per loop
// iteration, or make a namespace contain itself): printing, comparing, serialising and freeing
// a value all recurse over it.
inline constexpr int kMaxValueNesting = 256;
inline constexpr int64_t kMaxCompareItems = 10'000'000;     // items visited by one == or < of lists/dicts

}  // namespace mf::jinja
