// Rank sessions on threads: a stop asked from another thread ends every rank at the same
// step boundary, and the ranks hold the same weights there.
#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "actors/rank_session.hpp"
#include "engine/digest.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/rng.hpp"
#include "engine/token_shard.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

TEST(rank_session, a_stop_asked_from_another_thread_ends_every_rank_at_one_boundary) {
  lz::test::temp_dir dir("lz-rank-session");
  lz::engine::splitmix64 rng(4);
  std::vector<uint16_t> tokens(50000);
  for (auto& t : tokens) t = static_cast<uint16_t>(rng.below(200));
  lz::engine::write_token_shard(dir.file("tokens.bin"), tokens);
  const lz::engine::token_dataset data({dir.file("tokens.bin")}, 256);
  lz::config::run_spec spec;
  spec.model.layers = 2;
  spec.model.channels = 64;
  spec.model.max_seq_len = 32;
  spec.data.seq_len = 32;
  spec.data.micro_batch = 2;
  spec.data.slots = 3;
  spec.run.steps = 1000;
  spec.parallel.ranks = 2;
  spec.parallel.threads_per_rank = 1;
  auto log = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  lz::engine::inproc_world world(2, 0, std::chrono::seconds(60));
  std::vector<std::unique_ptr<lz::engine::communicator>> comms;
  std::vector<std::unique_ptr<lz::actors::rank_session>> sessions;
  for (int r = 0; r < 2; r++) {
    comms.push_back(world.connect(r));
    sessions.push_back(std::make_unique<lz::actors::rank_session>(spec, *comms.back(), data, log));
  }
  std::promise<void> three_steps;
  std::vector<int64_t> stopped_after(2, -1);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; r++) {
    threads.emplace_back([&, r] {
      auto& s = *sessions[static_cast<size_t>(r)];
      s.backend().use_in_this_thread();
      s.init_weights();
      for (int64_t step = 0; step < spec.run.steps; step++) {
        EXPECT_FALSE(s.step(step).discarded);
        if (r == 0 && step == 2) three_steps.set_value();
        if (s.any_rank_stops(false)) {
          stopped_after[static_cast<size_t>(r)] = step + 1;
          return;
        }
      }
    });
  }
  three_steps.get_future().wait();
  sessions[1]->request_stop();  // from this thread, while both ranks train
  for (auto& t : threads) t.join();
  EXPECT_GE(stopped_after[0], 3);
  EXPECT_LT(stopped_after[0], spec.run.steps);
  EXPECT_EQ(stopped_after[0], stopped_after[1]) << "the ranks stopped at different steps";
  const auto sha = [&](int r) {
    auto& m = sessions[static_cast<size_t>(r)]->model();
    return lz::engine::sha256_hex(m.params(), static_cast<size_t>(m.num_params()) * sizeof(float));
  };
  EXPECT_EQ(sha(0), sha(1));
}

}  // namespace
