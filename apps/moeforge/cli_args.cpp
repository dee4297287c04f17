// ArgParser keeps a setter closure per option that parses and assigns its value, so parse() is one
// loop with no per-type code. A number must use its whole text (std::from_chars / std::stof), and
// the argument after an option is always its value, even one starting with '-' (a negative number).
#include "cli_args.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace mf {

int parse_int_arg(const std::string& option, const std::string& text) {
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  MF_CHECK(!text.empty() && ec == std::errc() && p == text.data() + text.size(), "option --", option,
           ": expected an integer, got '", text, "'");
  return v;
}

float parse_float_arg(const std::string& option, const std::string& text) {
  size_t used = 0;
  float v = 0;
  try {
    v = std::stof(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MF_CHECK(!text.empty() && used == text.size() && std::isfinite(v), "option --", option,
           ": expected a number, got '", text, "'");
  return v;
}

uint64_t parse_u64_arg(const std::string& option, const std::string& text) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  MF_CHECK(!text.empty() && ec == std::errc() && p == text.data() + text.size(), "option --", option,
           ": expected a non-negative integer, got '", text, "'");
  return v;
}

ArgParser::ArgParser(std::string usage, std::string summary) : usage_(std::move(usage)), summary_(std::move(summary)) {}

ArgParser::Spec& ArgParser::add(const std::string& name, char short_name, const std::string& metavar,
                                const std::string& help) {
  Spec s;
  s.name = name;
  s.short_name = short_name;
  s.metavar = metavar;
  s.help = help;
  s.group = current_group_;
  specs_.push_back(std::move(s));
  return specs_.back();
}

void ArgParser::group(const std::string& title) { current_group_ = title; }

void ArgParser::example(const std::string& command_line, const std::string& what) {
  examples_.emplace_back(command_line, what);
}

void ArgParser::flag(const std::string& name, const std::string& help, bool* out) {
  Spec& s = add(name, 0, "", help);
  s.takes_value = false;
  s.set = [out](const std::string&) { *out = true; };
}

void ArgParser::option(const std::string& name, char short_name, const std::string& metavar,
                       const std::string& help, std::string* out, bool required) {
  Spec& s = add(name, short_name, metavar, help);
  s.required = required;
  s.set = [out](const std::string& v) { *out = v; };
}

void ArgParser::option(const std::string& name, const std::string& metavar, const std::string& help, int* out) {
  option(name, 0, metavar, help, out);
}

void ArgParser::option(const std::string& name, char short_name, const std::string& metavar, const std::string& help,
                       int* out) {
  add(name, short_name, metavar, help).set = [out, name](const std::string& v) { *out = parse_int_arg(name, v); };
}

void ArgParser::option(const std::string& name, const std::string& metavar, const std::string& help, float* out) {
  add(name, 0, metavar, help).set = [out, name](const std::string& v) { *out = parse_float_arg(name, v); };
}

void ArgParser::option(const std::string& name, const std::string& metavar, const std::string& help, uint64_t* out) {
  add(name, 0, metavar, help).set = [out, name](const std::string& v) { *out = parse_u64_arg(name, v); };
}

void ArgParser::repeated(const std::string& name, const std::string& metavar, const std::string& help,
                         std::vector<std::string>* out) {
  add(name, 0, metavar, help + " (repeatable)").set = [out](const std::string& v) { out->push_back(v); };
}

void ArgParser::positional(const std::string& metavar, const std::string& help, std::string* out, bool required) {
  MF_CHECK(positionals_.empty() || !positionals_.back().list, "positional ", metavar, " follows a list");
  positionals_.push_back({metavar, help, false, required, 0, [out](const std::string& v) { *out = v; }});
}

void ArgParser::positionals(const std::string& metavar, const std::string& help, std::vector<std::string>* out,
                            bool required) {
  MF_CHECK(positionals_.empty() || !positionals_.back().list, "positional ", metavar, " follows a list");
  positionals_.push_back({metavar, help, true, required, 0, [out](const std::string& v) { out->push_back(v); }});
}

void ArgParser::take_positional(const std::string& arg) {
  for (auto& p : positionals_)
    if (p.list || p.taken == 0) {
      p.set(arg);
      ++p.taken;
      return;
    }
  fail("unexpected argument '", arg, "' (see --help)");
}

void ArgParser::alias(const std::string& spelling, const std::string& option_name) {
  Spec* s = find_long(option_name);
  MF_CHECK(s, "alias ", spelling, " names no option --", option_name);
  MF_CHECK(spelling.size() >= 2 && spelling[0] == '-' && !find_alias(spelling), "alias ", spelling,
           " is not an option spelling or is taken");
  s->aliases.push_back(spelling);
}

ArgParser::Spec* ArgParser::find_alias(const std::string& spelling) {
  for (auto& s : specs_)
    for (const auto& a : s.aliases)
      if (a == spelling) return &s;
  return nullptr;
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string ArgParser::unknown_option_message(const std::string& shown) const {
  // The nearest long name or alias, when it is close enough to be a typo of it.
  const std::string typed = shown.substr(shown.find_first_not_of('-'));
  std::string best;
  size_t best_distance = std::max<size_t>(2, typed.size() / 3) + 1;
  auto consider = [&](const std::string& candidate, const std::string& as_typed) {
    const size_t d = edit_distance(typed, candidate);
    if (d < best_distance) best_distance = d, best = as_typed;
  };
  for (const auto& s : specs_) {
    consider(s.name, "--" + s.name);
    for (const auto& a : s.aliases) consider(a.substr(a.find_first_not_of('-')), a);
  }
  consider("help", "--help");
  return "unknown option '" + shown + "'" + (best.empty() ? "" : " (did you mean " + best + "?)") + " (see --help)";
}

ArgParser::Spec* ArgParser::find_long(const std::string& name) {
  for (auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

ArgParser::Spec* ArgParser::find_short(char c) {
  for (auto& s : specs_)
    if (s.short_name == c) return &s;
  return nullptr;
}

bool ArgParser::parse(const std::vector<std::string>& args, std::ostream& help_out) {
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_ended || a.empty() || a[0] != '-' || a == "-") {
      take_positional(a);
      continue;
    }
    if (a == "--") {
      options_ended = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      help_out << help();
      return false;
    }
    Spec* s = nullptr;
    std::string value;
    bool inline_value = false;
    std::string shown = a;
    const std::string spelled = a.substr(0, a.find('='));
    if (Spec* aliased = find_alias(spelled)) {
      s = aliased;
      shown = spelled;
      if (spelled.size() < a.size()) {
        value = a.substr(spelled.size() + 1);
        inline_value = true;
      }
    } else if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      s = find_long(name);
      shown = "--" + name;
    } else if (a.size() == 2 && a[0] == '-' && a[1] != '-') {
      s = find_short(a[1]);
    } else if (a.size() > 2 && a[0] == '-' && a[1] != '-' && !std::isdigit(static_cast<unsigned char>(a[1]))) {
      shown = a;  // "-temp": an unknown multi-letter short form
    } else {
      take_positional(a);  // "-5": not an option spelling
      continue;
    }
    if (!s) fail(unknown_option_message(shown));
    if (!s->takes_value) {
      MF_CHECK(!inline_value, "option ", shown, " takes no value");
      s->set("");
    } else {
      if (!inline_value) {
        MF_CHECK(i + 1 < args.size(), "option ", shown, " needs a value (", s->metavar, ")");
        value = args[++i];
      }
      s->set(value);
    }
    s->seen = true;
  }
  for (const auto& p : positionals_)
    MF_CHECK(!p.required || p.taken > 0, "missing ", p.metavar, " (usage: ", usage_, ")");
  for (const auto& s : specs_)
    MF_CHECK(!s.required || s.seen, "missing required option ", s.short_name ? std::string("-") + s.short_name + "/" : "",
             "--", s.name, " (see --help)");
  return true;
}

bool ArgParser::given(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return s.seen;
  fail("ArgParser::given: no option --", name);
}

std::string ArgParser::help() const {
  std::ostringstream out;
  out << "usage: " << usage_ << "\n\n" << summary_ << "\n";
  if (!positionals_.empty()) {
    out << "\narguments:\n";
    for (const auto& p : positionals_) {
      std::string left = "  " + p.metavar + (p.list ? "..." : "");
      if (left.size() + 2 <= 30) left.resize(30, ' ');
      else left += "  ";
      out << left << p.help << (p.required ? " (required)" : "") << "\n";
    }
  }
  // Options under their group headings, groups in the order they were first declared.
  std::vector<std::string> groups;
  if (specs_.empty()) groups.push_back("");
  for (const auto& s : specs_)
    if (std::find(groups.begin(), groups.end(), s.group) == groups.end()) groups.push_back(s.group);
  for (const auto& g : groups) {
    out << "\n" << (g.empty() ? "options" : g) << ":\n";
    for (const auto& s : specs_) {
      if (s.group != g) continue;
      std::string left = "  ";
      left += s.short_name ? std::string("-") + s.short_name + ", " : "    ";
      left += "--" + s.name;
      for (const auto& a : s.aliases) left += ", " + a;
      if (s.takes_value) left += " " + s.metavar;
      if (left.size() + 2 <= 30) left.resize(30, ' ');
      else left += "  ";
      out << left << s.help << (s.required ? " (required)" : "") << "\n";
    }
  }
  out << "  -h, --help                  show this help\n";
  if (!examples_.empty()) {
    out << "\nexamples:\n";
    for (const auto& [line, what] : examples_) out << "  " << line << "\n      " << what << "\n";
  }
  return out.str();
}

}  // namespace mf
