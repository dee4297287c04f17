// Arithmetic on sizes that come from untrusted files (shapes, counts, offsets): an overflow is an
// mf::Error saying what was being computed, never a silent wrap that a later bounds check would
// then pass.
#pragma once
#include <cstdint>

#include "core/error.h"

namespace mf {

// a * b, or mf::Error naming `what` (the file and the field) when the product does not fit.
template <class... Where>
uint64_t checked_mul(uint64_t a, uint64_t b, const Where&... what) {
  uint64_t r = 0;
  MF_CHECK(!__builtin_mul_overflow(a, b, &r), what..., ": ", a, " x ", b, " overflows 64 bits");
  return r;
}

// a + b, likewise.
template <class... Where>
uint64_t checked_add(uint64_t a, uint64_t b, const Where&... what) {
  uint64_t r = 0;
  MF_CHECK(!__builtin_add_overflow(a, b, &r), what..., ": ", a, " + ", b, " overflows 64 bits");
  return r;
}

}  // namespace mf
