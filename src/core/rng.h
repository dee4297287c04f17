// Seeded pseudo-random numbers (xoshiro256**). Each user owns its Rng: no global state,
// and the full state can be saved and restored (training checkpoints need that).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace mf {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : state_) s = splitmix64(x);
    has_spare_ = false;
  }
  uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 24 random bits (exactly representable floats).
  float uniform() { return float(next_u64() >> 40) * 0x1.0p-24f; }
  double uniform_double() { return double(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }
  // Standard normal (Box-Muller, caches the second value).
  float normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform_double(), u2 = uniform_double();
    if (u1 < 1e-300) u1 = 1e-300;
    double r = std::sqrt(-2.0 * std::log(u1)), theta = 6.283185307179586 * u2;
    spare_ = float(r * std::sin(theta));
    has_spare_ = true;
    return float(r * std::cos(theta));
  }

  struct State {
    std::array<uint64_t, 4> words;
    bool has_spare;
    float spare;
  };
  State state() const { return {state_, has_spare_, spare_}; }
  void set_state(const State& s) {
    state_ = s.words;
    has_spare_ = s.has_spare;
    spare_ = s.spare;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::array<uint64_t, 4> state_{};
  bool has_spare_ = false;
  float spare_ = 0.f;
};

}  // namespace mf
