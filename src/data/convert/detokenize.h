// Undoing the "spaces around every punctuation mark" tokenisation of corpora such as WikiText
// and DailyDialog, so that converted text reads like ordinary prose.
#pragma once
#include <string>
#include <string_view>

namespace mf {

// Rejoins one space-tokenised paragraph: "word , word ." -> "word, word.", "( a )" -> "(a)",
// "it ' s" / "it 's" / "I ’ Ve" -> "it's" / "it's" / "I’ve", "$ 14" -> "$14", "17 : 30" ->
// "17:30", "o ’clock" -> "o’clock", straight double quotes paired ("a \" b \" c" -> "a \"b\" c"), "players ' rights" ->
// "players' rights". Runs of spaces collapse to one; newlines are treated as spaces.
std::string detokenize(std::string_view spaced);

}  // namespace mf
