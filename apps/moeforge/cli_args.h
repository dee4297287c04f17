// A small command-line parser for the moeforge subcommands: long options (--name VALUE or
// --name=VALUE), optional short aliases (-m), boolean flags, repeatable options, required
// options, positional arguments anywhere among the options (`--` ends the options), typed
// values checked in full ("12x" is not an int), and generated --help text.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace mf {

class ArgParser {
 public:
  ArgParser(std::string usage, std::string summary);

  void flag(const std::string& name, const std::string& help, bool* out);
  void option(const std::string& name, char short_name, const std::string& metavar, const std::string& help,
              std::string* out, bool required = false);
  void option(const std::string& name, const std::string& metavar, const std::string& help, int* out);
  void option(const std::string& name, char short_name, const std::string& metavar, const std::string& help, int* out);
  void option(const std::string& name, const std::string& metavar, const std::string& help, float* out);
  void option(const std::string& name, const std::string& metavar, const std::string& help, uint64_t* out);
  void repeated(const std::string& name, const std::string& metavar, const std::string& help,
                std::vector<std::string>* out);
  // A positional argument (RECIPE.yaml): the first argument that is not an option or an
  // option's value, wherever it stands. Declared in order; a list takes all the rest.
  void positional(const std::string& metavar, const std::string& help, std::string* out, bool required = false);
  void positionals(const std::string& metavar, const std::string& help, std::vector<std::string>* out,
                   bool required = false);
  // Options declared after this call are listed under `title` in --help.
  void group(const std::string& title);
  // A command line shown under "examples:" at the end of --help, with what it does.
  void example(const std::string& command_line, const std::string& what);
  // Another spelling of an option, exactly as typed, e.g. "-n", "--temp" or "-sys" (the forms
  // llama.cpp users type); help lists it beside the option.
  void alias(const std::string& spelling, const std::string& option_name);

  // Parses `args` (without the program/subcommand name). Returns false when --help/-h was
  // given, after writing help() to `help_out`. Throws mf::Error for an unknown option, a
  // missing or malformed value, a stray positional argument or a missing required option.
  bool parse(const std::vector<std::string>& args, std::ostream& help_out);
  std::string help() const;
  // True when the last parse() met option `name` (by any spelling): the user chose its value.
  bool given(const std::string& name) const;

 private:
  struct Spec {
    std::string name;
    char short_name = 0;
    std::string metavar, help;
    bool takes_value = true, required = false, seen = false;
    std::function<void(const std::string&)> set;
    std::vector<std::string> aliases;
    std::string group;  // --help heading; empty: "options"
  };
  struct Positional {
    std::string metavar, help;
    bool list = false, required = false;
    size_t taken = 0;
    std::function<void(const std::string&)> set;
  };
  Spec& add(const std::string& name, char short_name, const std::string& metavar, const std::string& help);
  // Gives `arg` to the next positional slot; throws when every slot is full.
  void take_positional(const std::string& arg);
  Spec* find_long(const std::string& name);
  Spec* find_short(char c);
  Spec* find_alias(const std::string& spelling);
  // "unknown option '--temprature' (did you mean --temperature?)"
  std::string unknown_option_message(const std::string& shown) const;

  std::string usage_, summary_;
  std::vector<Spec> specs_;
  std::vector<Positional> positionals_;
  std::string current_group_;
  std::vector<std::pair<std::string, std::string>> examples_;  // command line, what it does
};

// Strict numeric parsing with errors naming the option.
int parse_int_arg(const std::string& option, const std::string& text);
float parse_float_arg(const std::string& option, const std::string& text);
uint64_t parse_u64_arg(const std::string& option, const std::string& text);

}  // namespace mf
