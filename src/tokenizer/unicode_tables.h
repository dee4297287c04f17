// Raw Unicode data tables, generated into unicode_tables.cpp by scripts/gen_unicode_tables.py.
// Use the lookups in unicode.h rather than these arrays.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mf::unicode {

// The classes the BPE pre-tokenizer regexes distinguish: \p{L}, \p{N}, \s (White_Space), rest.
enum class CharClass : uint8_t { Other = 0, Letter = 1, Number = 2, Whitespace = 3 };

namespace tables {

struct ClassRange { char32_t first, last; CharClass cls; };
struct CombiningRange { char32_t first, last; uint8_t ccc; };
struct Decomposition { char32_t cp; uint32_t offset; uint32_t length; };  // into kDecompositionData
struct Composition { char32_t first, second, composite; };

extern const char* const kUnicodeVersion;
extern const ClassRange kClassRanges[];          // sorted, disjoint; absent = Other
extern const size_t kClassRangeCount;
extern const CombiningRange kCombiningRanges[];  // sorted, disjoint; absent = 0
extern const size_t kCombiningRangeCount;
extern const char32_t kDecompositionData[];
extern const Decomposition kDecompositions[];    // sorted by cp; one level, apply recursively
extern const size_t kDecompositionCount;
extern const Composition kCompositions[];        // sorted by (first, second)
extern const size_t kCompositionCount;

}  // namespace tables
}  // namespace mf::unicode
