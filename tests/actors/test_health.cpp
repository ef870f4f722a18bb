// Who is dead, as pure functions of an injected clock: silent nodes and faulty exits.
#include <gtest/gtest.h>

#include "actors/health.hpp"

namespace {

using namespace std::chrono_literals;
using lz::actors::health_clock;

TEST(health, a_node_is_silent_only_past_the_timeout) {
  const health_clock::time_point t0{};
  const std::map<int32_t, health_clock::time_point> heard{{0, t0}, {1, t0 + 10s}, {2, t0 + 14s}};
  EXPECT_TRUE(lz::actors::silent_nodes(t0 + 15s, heard, 15000ms).empty()) << "exactly the timeout";
  const auto silent = lz::actors::silent_nodes(t0 + 20s, heard, 15000ms);
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent.begin()->first, 0);
  EXPECT_NE(silent.at(0).find("20000 ms"), std::string::npos) << silent.at(0);
  EXPECT_EQ(lz::actors::silent_nodes(t0 + 40s, heard, 15000ms).size(), 3u);
  EXPECT_TRUE(lz::actors::silent_nodes(t0 + 1h, {}, 15000ms).empty());
}

TEST(health, any_signal_or_nonzero_code_is_a_fault_and_a_clean_exit_is_not) {
  EXPECT_FALSE(lz::actors::exit_fault(0, 0).has_value());
  EXPECT_EQ(lz::actors::exit_fault(3, 0), std::optional<std::string>("exited with code 3"));
  const auto killed = lz::actors::exit_fault(-1, 9);
  ASSERT_TRUE(killed.has_value());
  EXPECT_NE(killed->find("signal 9 (Killed)"), std::string::npos) << *killed;
  EXPECT_TRUE(lz::actors::exit_fault(0, 15).has_value()) << "a signal counts whatever the code";
}

}  // namespace
