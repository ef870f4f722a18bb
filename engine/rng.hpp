// rng.hpp: the project's own deterministic random numbers (splitmix64), so that weights,
// data order and samples do not depend on the standard library's distributions.
#pragma once

#include <cmath>
#include <cstdint>

namespace lz::engine {

class splitmix64 {
public:
  explicit splitmix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // uniform in [0, 1) with 53 random bits
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // uniform integer in [0, n) (n > 0), unbiased by rejection
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }
  // standard normal by Box-Muller (one value per call; simple beats fast here)
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

private:
  uint64_t state_;
};

// Mixes several values into one seed (for per-stream seeding: seed, epoch, rank, ...).
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  splitmix64 r(a ^ (b * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  return r.next();
}

}  // namespace lz::engine
