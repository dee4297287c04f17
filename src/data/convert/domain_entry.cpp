#include "data/convert/domain_entry.h"

#include "core/error.h"

namespace mf {

const char* domain_entry_reason_name(DomainEntryReason reason) {
  switch (reason) {
    case DomainEntryReason::source_option: return "--source";
    case DomainEntryReason::file_stem: return "file stem";
    case DomainEntryReason::detected_format: return "detected format";
  }
  return "?";
}

DomainEntryChoice choose_domain_entry(const DomainMap& map, const std::string& path, const std::string& stem,
                                      const std::string& format, const std::string& forced) {
  if (!forced.empty()) {
    const std::string entry = map.entry_covering(forced);
    MF_CHECK(!entry.empty(), "--source ", forced, ": the domain map ", map.name(), " has no entry sources.", forced);
    return {entry, DomainEntryReason::source_option};
  }
  if (std::string entry = map.entry_covering(stem); !entry.empty()) return {std::move(entry), DomainEntryReason::file_stem};
  // An exact name only: a format is not a source, so the NAME_* rule does not apply to it.
  if (map.has_entry(format)) return {format, DomainEntryReason::detected_format};
  fail(path, ": the domain map ", map.name(), " has no entry for the source '", stem, "' nor for its format '", format,
       "' (add sources.", stem, " or sources.", format, " with a default domain, or pass --source NAME to use an "
       "existing entry)");
}

}  // namespace mf
