// AdamW and the learning-rate schedule against values computed by hand.
#include <cmath>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "engine/optimizer.hpp"

namespace {

using lz::engine::lr_schedule;

TEST(lr_schedule, warmup_is_linear_from_lr_over_warmup_steps) {
  const lr_schedule s{1e-3, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(4), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);
}

TEST(lr_schedule, cosine_decays_from_peak_to_min_at_last_step) {
  const lr_schedule s{1e-3, 0.1, 10, 111};  // decay over steps 10..110 (101 steps)
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 1e-4 + 0.5 * (1e-3 - 1e-4), 1e-15);  // halfway: cos(pi/2) = 0
  EXPECT_NEAR(s.at(110), 1e-4, 1e-15);
  EXPECT_NEAR(s.at(500), 1e-4, 1e-15);  // past the end it stays at the minimum
  for (int64_t i = 11; i <= 110; i++) EXPECT_LT(s.at(i), s.at(i - 1));
}

TEST(adamw, two_steps_match_hand_computed_values) {
  lz::engine::gpt2_config cfg{4, 2, 2, 1, 1, 1};  // a layout of 29 scalars
  const lz::engine::param_layout layout(cfg);
  auto k = lz::kernels::make_cpu_backend(1);
  lz::engine::adamw_options opt{0.9, 0.999, 1e-8, 0.1};
  lz::engine::adamw_optimizer adam(layout, 0, layout.total(), opt);
  std::vector<float> p(static_cast<size_t>(layout.total()), 0.5f);
  std::vector<float> g(p.size(), 0.2f);

  // step 1: m = 0.02, v = 4e-5; mhat = 0.2, vhat = 0.04 -> update 0.2 / (0.2 + 1e-8) ~ 1
  adam.step(*k, p.data(), g.data(), 0.01, 1, 1.0f);
  const double wte_1 = 0.5 - 0.01 * (0.2 / (0.2 + 1e-8) + 0.1 * 0.5);   // decayed matrix
  const double bias_1 = 0.5 - 0.01 * (0.2 / (0.2 + 1e-8));             // not decayed
  const auto& wte = layout.get("wte");
  const auto& lnfb = layout.get("lnfb");
  EXPECT_NEAR(p[static_cast<size_t>(wte.offset)], wte_1, 1e-6);
  EXPECT_NEAR(p[static_cast<size_t>(lnfb.offset)], bias_1, 1e-6);

  // step 2 with gradient 0.1 scaled by 2 (the clip factor is applied first): g = 0.2 again
  std::fill(g.begin(), g.end(), 0.1f);
  adam.step(*k, p.data(), g.data(), 0.01, 2, 2.0f);
  const double m2 = 0.9 * 0.02 + 0.1 * 0.2, v2 = 0.999 * 4e-5 + 0.001 * 0.04;
  const double mhat = m2 / (1 - 0.81), vhat = v2 / (1 - 0.999 * 0.999);
  const double wte_2 = wte_1 - 0.01 * (mhat / (std::sqrt(vhat) + 1e-8) + 0.1 * wte_1);
  EXPECT_NEAR(p[static_cast<size_t>(wte.offset)], wte_2, 1e-6);
  // fp32 moments and hyper-parameters (1 - 0.999f is off by 5e-5 relative)
  EXPECT_NEAR(adam.m()[0], m2, 1e-4 * m2);
  EXPECT_NEAR(adam.v()[0], v2, 1e-4 * v2);
}

TEST(adamw, a_range_owner_updates_only_its_range) {
  lz::engine::gpt2_config cfg{4, 2, 2, 1, 1, 1};
  const lz::engine::param_layout layout(cfg);
  auto k = lz::kernels::make_cpu_backend(1);
  lz::engine::adamw_optimizer adam(layout, 5, 20, {0.9, 0.95, 1e-8, 0.0});
  std::vector<float> p(static_cast<size_t>(layout.total()), 1.0f), g(p.size(), 1.0f);
  adam.step(*k, p.data(), g.data(), 0.1, 1, 1.0f);
  for (size_t i = 0; i < p.size(); i++) {
    if (i >= 5 && i < 20) {
      EXPECT_NEAR(p[i], 0.9f, 1e-6) << i;
    } else {
      EXPECT_EQ(p[i], 1.0f) << i;
    }
  }
}

}  // namespace

namespace {

TEST(adamw, snapshot_receives_the_state_before_the_update_and_changes_nothing_else) {
  lz::engine::gpt2_config cfg{4, 2, 2, 1, 1, 1};
  const lz::engine::param_layout layout(cfg);
  auto k = lz::kernels::make_cpu_backend(2);
  const int64_t n = layout.total();
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) g[static_cast<size_t>(i)] = 0.01f * static_cast<float>(i % 7) - 0.03f;
  auto run = [&](bool snapshot, std::vector<float>& snap_p, std::vector<float>& snap_m,
                 std::vector<float>& snap_v) {
    lz::engine::adamw_optimizer adam(layout, 3, n, {0.9, 0.95, 1e-8, 0.1});
    std::vector<float> p(static_cast<size_t>(n), 0.25f);
    adam.step(*k, p.data(), g.data(), 0.01, 1, 1.0f);  // moments become non-zero
    const std::vector<float> p_before = p;
    const std::vector<float> m_before(adam.m(), adam.m() + (n - 3));
    const std::vector<float> v_before(adam.v(), adam.v() + (n - 3));
    lz::kernels::adamw_snapshot s{snap_p.data(), snap_m.data(), snap_v.data()};
    adam.step(*k, p.data(), g.data(), 0.01, 2, 0.5f, snapshot ? &s : nullptr);
    if (snapshot) {
      EXPECT_EQ(0, std::memcmp(snap_p.data(), p_before.data() + 3, snap_p.size() * 4));
      EXPECT_EQ(0, std::memcmp(snap_m.data(), m_before.data(), snap_m.size() * 4));
      EXPECT_EQ(0, std::memcmp(snap_v.data(), v_before.data(), snap_v.size() * 4));
    }
    std::vector<float> out = p;
    out.insert(out.end(), adam.m(), adam.m() + (n - 3));
    out.insert(out.end(), adam.v(), adam.v() + (n - 3));
    return out;
  };
  std::vector<float> sp(static_cast<size_t>(n - 3)), sm(sp.size()), sv(sp.size());
  const auto with = run(true, sp, sm, sv);
  const auto without = run(false, sp, sm, sv);
  ASSERT_EQ(with.size(), without.size());
  EXPECT_EQ(0, std::memcmp(with.data(), without.data(), with.size() * 4));
}

}  // namespace
