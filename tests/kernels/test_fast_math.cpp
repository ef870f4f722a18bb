#include <cmath>

#include <gtest/gtest.h>

#include "kernels/cpu/fast_math.hpp"

using lz::kernels::cpu::fast_expf;
using lz::kernels::cpu::fast_tanhf;

TEST(fast_math, exp_is_within_a_few_ulp_over_the_softmax_range) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::abs(fast_expf(x) - want) / want;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 4e-7);
  EXPECT_EQ(fast_expf(-200.0f), 0.0f);
  EXPECT_EQ(fast_expf(0.0f), 1.0f);
  EXPECT_TRUE(std::isfinite(fast_expf(1000.0f)));
}

TEST(fast_math, tanh_is_accurate_and_odd) {
  for (float x = -20.0f; x <= 20.0f; x += 0.00731f) {
    EXPECT_NEAR(fast_tanhf(x), std::tanh(static_cast<double>(x)), 3e-7) << x;
    EXPECT_EQ(fast_tanhf(-x), -fast_tanhf(x));
  }
}
