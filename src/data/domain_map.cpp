#include "data/domain_map.h"

#include <algorithm>
#include <filesystem>

#include <yaml-cpp/yaml.h>

#include "core/mapped_file.h"

namespace mf {
namespace {

// Reads one YAML mapping with the key path and file named in every error.
class Where {
 public:
  Where(std::string file, std::string key) : file_(std::move(file)), key_(std::move(key)) {}
  Where operator/(const std::string& child) const { return {file_, key_.empty() ? child : key_ + "." + child}; }
  Where at(size_t i) const { return {file_, cat(key_, "[", i, "]")}; }
  [[noreturn]] void fail_at(const YAML::Node& n, const std::string& why) const {
    const int line = n.Mark().line;
    fail(file_, line >= 0 ? cat(":", line + 1) : std::string(), ": ", key_.empty() ? "" : key_ + ": ", why);
  }
  std::string scalar(const YAML::Node& n) const {
    if (!n.IsScalar()) fail_at(n, "expected a single value");
    return n.Scalar();
  }
  void only_keys(const YAML::Node& n, std::initializer_list<const char*> allowed) const {
    if (!n.IsMap()) fail_at(n, "expected a mapping");
    for (const auto& kv : n) {
      const std::string k = kv.first.Scalar();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; }))
        (*this / k).fail_at(kv.first, "unknown key");
    }
  }

 private:
  std::string file_, key_;
};

}  // namespace

DomainMap DomainMap::load(const std::string& path) {
  MF_CHECK(std::filesystem::is_regular_file(path), path, ": no such domain map");
  return parse(read_text_file(path), path);
}

DomainMap DomainMap::parse(const std::string& yaml_text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail(name, ":", e.mark.line + 1, ": invalid YAML: ", e.msg);
  }
  const Where top(name, "");
  top.only_keys(root, {"domains", "sources"});
  DomainMap m;
  m.name_ = name;

  const Where dw = top / "domains";
  const YAML::Node domains = root["domains"];
  if (!domains || !domains.IsSequence() || domains.size() == 0)
    dw.fail_at(domains ? domains : root, "expected a non-empty list of domain names");
  for (size_t i = 0; i < domains.size(); ++i) {
    std::string d = dw.at(i).scalar(domains[i]);
    if (std::find(m.domains_.begin(), m.domains_.end(), d) != m.domains_.end())
      dw.at(i).fail_at(domains[i], "domain '" + d + "' is listed twice");
    m.domains_.push_back(std::move(d));
  }
  const auto known_domain = [&](const Where& w, const YAML::Node& n) {
    std::string d = w.scalar(n);
    if (std::find(m.domains_.begin(), m.domains_.end(), d) == m.domains_.end()) {
      std::string known;
      for (const std::string& k : m.domains_) known += (known.empty() ? "" : ", ") + k;
      w.fail_at(n, "unknown domain '" + d + "' (domains: " + known + ")");
    }
    return d;
  };

  const Where sw = top / "sources";
  const YAML::Node sources = root["sources"];
  if (!sources || !sources.IsMap() || sources.size() == 0)
    sw.fail_at(sources ? sources : root, "expected a mapping of source name -> {default, rules}");
  for (const auto& kv : sources) {
    const std::string source = kv.first.Scalar();
    const Where ew = sw / source;
    Entry e;
    if (kv.second.IsScalar()) {  // "gsm8k: Thinker" is short for {default: Thinker}
      e.default_domain = known_domain(ew, kv.second);
    } else {
      ew.only_keys(kv.second, {"default", "rules"});
      if (!kv.second["default"]) ew.fail_at(kv.second, "missing key 'default'");
      e.default_domain = known_domain(ew / "default", kv.second["default"]);
      if (const YAML::Node rules = kv.second["rules"]) {
        if (!rules.IsSequence()) (ew / "rules").fail_at(rules, "expected a list of {field, regex, domain}");
        for (size_t i = 0; i < rules.size(); ++i) {
          const Where rw = (ew / "rules").at(i);
          rw.only_keys(rules[i], {"field", "regex", "domain"});
          for (const char* k : {"field", "regex", "domain"})
            if (!rules[i][k]) rw.fail_at(rules[i], cat("missing key '", k, "'"));
          Rule r;
          r.field = (rw / "field").scalar(rules[i]["field"]);
          if (r.field != "instruction" && r.field != "input" && r.field != "output" && r.field != "category")
            (rw / "field").fail_at(rules[i]["field"], "unknown field '" + r.field +
                                                          "' (fields: instruction, input, output, category)");
          r.pattern = (rw / "regex").scalar(rules[i]["regex"]);
          try {
            r.regex = std::regex(r.pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
          } catch (const std::regex_error& err) {
            (rw / "regex").fail_at(rules[i]["regex"], "invalid regex '" + r.pattern + "': " + err.what());
          }
          r.domain = known_domain(rw / "domain", rules[i]["domain"]);
          e.rules.push_back(std::move(r));
        }
      }
    }
    m.sources_[source] = std::move(e);
  }
  return m;
}

std::string DomainMap::entry_covering(const std::string& source) const {
  if (sources_.count(source)) return source;
  std::string best;
  for (const auto& [name, entry] : sources_)
    if (name.size() > best.size() && source.size() > name.size() && source.compare(0, name.size(), name) == 0 &&
        source[name.size()] == '_')
      best = name;
  return best;
}

const DomainMap::Entry* DomainMap::entry_for(const std::string& source) const {
  const auto it = sources_.find(entry_covering(source));
  return it == sources_.end() ? nullptr : &it->second;
}

const std::string& DomainMap::domain_of(const SftRecord& r) const {
  const Entry* e = entry_for(r.source);
  MF_CHECK(e, name_, ": no entry in 'sources' covers the source '", r.source, "' (add sources.", r.source,
           " with a default domain)");
  return domain_under(r, *e);
}

const std::string& DomainMap::domain_of(const SftRecord& r, const std::string& entry) const {
  const auto it = sources_.find(entry);
  MF_CHECK(it != sources_.end(), name_, ": no entry sources.", entry);
  return domain_under(r, it->second);
}

const std::string& DomainMap::domain_under(const SftRecord& r, const Entry& e) const {
  for (const Rule& rule : e.rules) {
    const std::string& text = rule.field == "instruction" ? r.instruction
                              : rule.field == "input"     ? r.input
                              : rule.field == "output"    ? r.output
                                                          : r.category;
    if (std::regex_search(text, rule.regex)) return rule.domain;
    // A whole conversation's topic is often set by an earlier turn ("Write a Python function",
    // then "Now make it work on a list"): instruction rules read every user turn of it, output
    // rules every answer. Other records' history is context and is not read.
    if (!r.loss_on_history || (rule.field != "instruction" && rule.field != "output")) continue;
    const char* role = rule.field == "instruction" ? "user" : "assistant";
    for (const ChatTurn& t : r.history)
      if (t.role == role && std::regex_search(t.content, rule.regex)) return rule.domain;
  }
  return e.default_domain;
}

}  // namespace mf
