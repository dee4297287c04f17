// Errors: one exception type carrying a message that names what failed and where.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mf {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates anything streamable; the building block of every error message.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

}  // namespace mf

// Checks a precondition on input data (files, shapes, user flags); throws mf::Error.
#define MF_CHECK(cond, ...)                      \
  do {                                           \
    if (!(cond)) ::mf::fail(__VA_ARGS__);        \
  } while (0)
