// The rendezvous store served by the coordinator: set once, get waits for a set or its
// timeout, over a real actor system (the rank side is the engine's store interface).
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "actors/caf_runtime.hpp"
#include "actors/store_actor.hpp"

namespace {

using namespace std::chrono_literals;

TEST(store_actor, a_get_waits_for_the_set_of_another_rank) {
  lz::actors::caf_runtime runtime({});
  auto& sys = runtime.system();
  const caf::actor store = sys.spawn(lz::actors::store_actor, lz::actors::store_limits{});
  lz::actors::remote_store a(sys, store), b(sys, store);
  std::vector<char> got;
  std::thread waiter([&] { got = b.get("g0/rank1", 10s); });  // asks before the key exists
  a.set("g0/rank1", {'h', 'i'});
  waiter.join();
  EXPECT_EQ(got, (std::vector<char>{'h', 'i'}));
  EXPECT_EQ(b.get("g0/rank1", 1s), got) << "a key stays";
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST(store_actor, a_key_is_never_overwritten_and_a_missing_one_times_out) {
  lz::actors::caf_runtime runtime({});
  auto& sys = runtime.system();
  const caf::actor store = sys.spawn(lz::actors::store_actor, lz::actors::store_limits{});
  lz::actors::remote_store s(sys, store);
  s.set("g1/x", {'1'});
  EXPECT_THROW(s.set("g1/x", {'2'}), lz::io_error);
  EXPECT_EQ(s.get("g1/x", 1s), std::vector<char>{'1'});
  const auto t0 = std::chrono::steady_clock::now();
  try {
    s.get("g1/never", 200ms);
    ADD_FAILURE() << "a get of a key nobody sets returned";
  } catch (const lz::io_error& e) {
    EXPECT_NE(std::string(e.what()).find("g1/never"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "the timeout is not advisory";
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

TEST(store_actor, a_store_at_its_limit_refuses_more_and_keeps_what_it_holds) {
  lz::actors::caf_runtime runtime({});
  auto& sys = runtime.system();
  const caf::actor store = sys.spawn(lz::actors::store_actor, lz::actors::store_limits{.max_bytes = 16});
  lz::actors::remote_store s(sys, store);
  s.set("g0/a", std::vector<char>(8, 'x'));  // 12 bytes with its key
  try {
    s.set("g0/b", std::vector<char>(8, 'y'));
    ADD_FAILURE() << "a set past the limit was taken";
  } catch (const lz::io_error& e) {
    EXPECT_NE(std::string(e.what()).find("past its limit of 16 bytes"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.get("g0/a", 1s), std::vector<char>(8, 'x'));
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

}  // namespace
