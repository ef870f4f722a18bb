// checked_math.hpp: int64 sums and products that report overflow instead of wrapping.
//
// Sizes derived from a run spec (parameter counts, activation buffers, bytes of memory)
// are products of user-given numbers; each is computed through these so that a value no
// validation caught becomes a clear error, never a wrapped size and a crash.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace lz {

// a * b, or nullopt when it does not fit in int64.
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

// a + b, or nullopt when it does not fit in int64.
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}

// The product of all factors (1 for none), or nullopt when any partial product overflows.
inline std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (const int64_t factor : factors)
    if (__builtin_mul_overflow(product, factor, &product)) return std::nullopt;
  return product;
}

}  // namespace lz
