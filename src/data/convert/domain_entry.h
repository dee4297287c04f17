// Which entry of the domain map a converted file's records use. Users name files as they like
// (my_alpaca.json, alpaca_heldout.json), so the file stem is tried first, then the entry named
// after the file's detected format (alpaca, messages, ...), unless `--source NAME` says which.
#pragma once
#include <string>

#include "data/domain_map.h"

namespace mf {

enum class DomainEntryReason { source_option, file_stem, detected_format };

// How the summary says it: "--source", "file stem", "detected format".
const char* domain_entry_reason_name(DomainEntryReason reason);

struct DomainEntryChoice {
  std::string entry;  // a key of the map's `sources`
  DomainEntryReason reason = DomainEntryReason::file_stem;
};

// `forced` (from --source; "" = none) must name an entry or a source an entry covers (the
// covering entry is used). Otherwise the entry covering `stem`, else the entry named exactly
// `format`. mf::Error naming `path`, the map and both names tried when none applies.
DomainEntryChoice choose_domain_entry(const DomainMap& map, const std::string& path, const std::string& stem,
                                      const std::string& format, const std::string& forced);

}  // namespace mf
