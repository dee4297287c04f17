// Which expert domain each instruction record belongs to, as data (a YAML file such as
// examples/data/domains.yaml):
//
//   domains: [Actor, Analyst, Coder, ...]      # every domain name a rule may use
//   sources:
//     gsm8k: {default: Thinker}                # every record of that source
//     alpaca_sample:
//       default: Encyclopedia
//       rules:                                 # ordered; the first match wins
//         - {field: instruction, regex: '\bsummar', domain: Summarizer}
//
// A source entry applies to the source of the same name and to every source that starts with
// its name followed by "_" ("dailydialog" covers "dailydialog_train"); the longest such entry
// wins. Rules test `field` (instruction, input, output or category) with an ECMAScript regex,
// case-insensitively, anywhere in the text; for a whole conversation (loss_on_history) an
// instruction rule also reads every user turn of the history, an output rule every answer.
#pragma once
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "data/sft_record.h"

namespace mf {

class DomainMap {
 public:
  // Errors name the file, the line and the key ("sources.alpaca.rules[2].domain: unknown
  // domain 'Codr'"); unknown keys and bad regexes are errors too.
  static DomainMap load(const std::string& path);
  static DomainMap parse(const std::string& yaml_text, const std::string& name_for_errors);

  const std::vector<std::string>& domains() const { return domains_; }
  const std::string& name() const { return name_; }
  bool covers(const std::string& source) const { return entry_for(source) != nullptr; }
  // The name of the entry that covers `source` (as above), "" when none does.
  std::string entry_covering(const std::string& source) const;
  bool has_entry(const std::string& entry) const { return sources_.count(entry) > 0; }
  // The domain of a record of r.source; mf::Error naming the map if no entry covers the source.
  const std::string& domain_of(const SftRecord& r) const;
  // The domain of a record under the entry named `entry` (whatever its source); mf::Error naming
  // the map if there is no such entry.
  const std::string& domain_of(const SftRecord& r, const std::string& entry) const;

 private:
  struct Rule {
    std::string field;  // instruction, input, output or category
    std::string pattern;
    std::regex regex;
    std::string domain;
  };
  struct Entry {
    std::string default_domain;
    std::vector<Rule> rules;
  };
  const Entry* entry_for(const std::string& source) const;
  const std::string& domain_under(const SftRecord& r, const Entry& e) const;

  std::string name_;
  std::vector<std::string> domains_;
  std::map<std::string, Entry> sources_;
};

}  // namespace mf
