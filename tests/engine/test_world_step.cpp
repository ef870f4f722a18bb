// The world-aware step: the slot tree, the in-process communicator, and the headline: the
// same weights, bit for bit, on 1, 2, 3 and 4 ranks with the exact reduction.
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/dataset.hpp"
#include "engine/digest.hpp"
#include "engine/gloo_communicator.hpp"
#include "engine/gpt2.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/optimizer.hpp"
#include "engine/rng.hpp"
#include "engine/slot_tree.hpp"
#include "engine/timed_communicator.hpp"
#include "engine/token_shard.hpp"
#include "engine/train_step.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace lz::engine;

TEST(slot_tree, maximal_subtrees_of_every_range_partition_it_and_sum_like_the_whole) {
  for (int64_t slots = 1; slots <= 13; slots++) {
    // the sum of slot values up the tree, from one rank holding everything
    std::vector<double> leaf(static_cast<size_t>(slots));
    for (int64_t i = 0; i < slots; i++) leaf[static_cast<size_t>(i)] = 1.0 / (3.0 + static_cast<double>(i));
    const auto whole_parts = maximal_subtrees(slots, 0, slots);
    ASSERT_EQ(whole_parts.size(), 1u);
    for (int world = 1; world <= 5; world++) {
      std::vector<std::pair<slot_node, double>> parts;
      int64_t next = 0;
      for (int r = 0; r < world; r++) {
        const slot_node mine = slot_range(slots, world, r);
        subtree_builder<double> b(slots, mine.begin, mine.end,
                                  [](double& l, double&& rr) { l += rr; });
        for (int64_t s = mine.begin; s < mine.end; s++) b.push(s, leaf[static_cast<size_t>(s)]);
        const auto values = b.take();
        ASSERT_EQ(values.size(), b.subtrees().size()) << slots << " slots, rank " << r;
        for (size_t k = 0; k < values.size(); k++) {
          EXPECT_EQ(b.subtrees()[k].begin, next);  // in slot order, no gap, no overlap
          next = b.subtrees()[k].end;
          parts.emplace_back(b.subtrees()[k], values[k]);
        }
      }
      EXPECT_EQ(next, slots);
      const double sum = tree_sum<double>(
          slots,
          [&](slot_node n) -> const double* {
            for (const auto& [node, v] : parts)
              if (node == n) return &v;
            return nullptr;
          },
          [](const double& a, const double& b) { return a + b; });
      const double one_rank = tree_sum<double>(
          slots,
          [&](slot_node n) -> const double* {
            return n.end - n.begin == 1 ? &leaf[static_cast<size_t>(n.begin)] : nullptr;
          },
          [](const double& a, const double& b) { return a + b; });
      EXPECT_EQ(sum, one_rank) << slots << " slots on " << world << " ranks";
    }
  }
}

TEST(slot_tree, a_rank_holds_a_logarithmic_number_of_subtrees) {
  for (int64_t first = 0; first < 64; first++) {
    for (int64_t last = first; last <= 64; last++) {
      EXPECT_LE(maximal_subtrees(64, first, last).size(), 12u) << first << " " << last;
    }
  }
}

enum class transport { inproc, gloo };

// Runs `body(rank, comm)` on `world` threads: ranks of one in-process world, or Gloo
// communicators over TCP on loopback that meet through one memory store.
void on_threads(int world, const std::function<void(int, communicator&)>& body,
                std::chrono::milliseconds timeout = std::chrono::seconds(30),
                transport kind = transport::inproc) {
  inproc_world w(world, 7, timeout);
  memory_store store;
  std::vector<std::thread> threads;
  for (int r = 0; r < world; r++) {
    threads.emplace_back([&, r] {
      const std::unique_ptr<communicator> comm =
          kind == transport::inproc ? w.connect(r)
                                    : connect_gloo(store, r, world, 7, {.timeout = timeout});
      body(r, *comm);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(inproc_communicator, collectives_move_exactly_what_each_rank_asked_for) {
  const int world = 3;
  on_threads(world, [&](int rank, communicator& c) {
    // all_to_all_v: rank r sends (r + 1) * (d + 1) values of 100 r + d to rank d
    std::vector<int64_t> send_counts, recv_counts;
    std::vector<float> send;
    for (int d = 0; d < world; d++) {
      send_counts.push_back((rank + 1) * (d + 1));
      recv_counts.push_back((d + 1) * (rank + 1));
      for (int64_t i = 0; i < send_counts.back(); i++) send.push_back(static_cast<float>(100 * rank + d));
    }
    std::vector<float> recv(static_cast<size_t>(std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0})));
    c.all_to_all_v(send.data(), send_counts, recv.data(), recv_counts);
    size_t at = 0;
    for (int s = 0; s < world; s++) {
      for (int64_t i = 0; i < recv_counts[static_cast<size_t>(s)]; i++) {
        EXPECT_EQ(recv[at++], static_cast<float>(100 * s + rank)) << "rank " << rank;
      }
    }
    // all_gather_v of uneven pieces, and an all-reduce
    std::vector<int64_t> counts{1, 0, 3};
    std::vector<double> all(4, -1.0);
    for (int64_t i = 0; i < counts[static_cast<size_t>(rank)]; i++) {
      all[static_cast<size_t>(prefix_offsets(counts)[static_cast<size_t>(rank)] + i)] = rank + 0.5;
    }
    c.all_gather_v(all.data(), counts);
    EXPECT_EQ(all, (std::vector<double>{0.5, 2.5, 2.5, 2.5}));
    std::vector<float> x(5, static_cast<float>(rank + 1));
    c.all_reduce_sum(x.data(), 5);
    EXPECT_EQ(x, std::vector<float>(5, 6.0f));
  });
}

TEST(inproc_communicator, a_rank_that_never_arrives_fails_the_others_naming_it) {
  std::vector<std::string> errors(3);
  on_threads(3, [&](int rank, communicator& c) {
    if (rank == 2) return;  // hung: never joins the barrier
    try {
      c.barrier();
    } catch (const comm_error& e) {
      errors[static_cast<size_t>(rank)] = e.what();
    }
  }, std::chrono::milliseconds(200));
  for (int r = 0; r < 2; r++) {
    EXPECT_NE(errors[static_cast<size_t>(r)].find("g7"), std::string::npos) << errors[static_cast<size_t>(r)];
    EXPECT_NE(errors[static_cast<size_t>(r)].find("rank 2"), std::string::npos) << errors[static_cast<size_t>(r)];
  }
}

TEST(inproc_communicator, abort_fails_a_waiting_rank_at_once) {
  inproc_world w(2, 3, std::chrono::minutes(10));  // a timeout no test waits out
  auto c0 = w.connect(0);
  std::string error;
  std::thread waiter([&] {
    try {
      c0->barrier();
    } catch (const comm_error& e) {
      error = e.what();
    }
  });
  w.abort();
  waiter.join();
  EXPECT_NE(error.find("aborted"), std::string::npos) << error;
  EXPECT_TRUE(c0->errored());
}

// A model big enough that its flat vector spans several norm chunks (so ranks own ranges).
gpt2_config small_model() { return {32, 256, 256, 4, 4, 96}; }

// Trains `steps` steps of `slots` slots on `world` ranks; returns the final weights' SHA-256
// (every rank must hold the same weights).
std::string train_on(int world, int64_t slots, int steps, reduction mode,
                     const std::string& shard, transport kind = transport::inproc) {
  std::vector<std::string> shas(static_cast<size_t>(world));
  on_threads(world, [&](int rank, communicator& comm) {
    auto k = lz::kernels::make_cpu_backend(1);
    gpt2 model(small_model(), *k);
    model.init_random(5);
    const token_dataset data({shard}, 256);
    train_batcher batcher(data, 11, 16, slots, 2);
    const owned_range mine = owner_range(model.num_params(), world, rank);
    adamw_optimizer opt(model.layout(), mine.begin, mine.end, {0.9, 0.95, 1e-8, 0.1});
    train_step step(model, opt, batcher, {3e-3, 0.1, 2, steps},
                    {.seq_len = 16, .micro_batch = 2, .slots = slots, .grad_clip = 1.0,
                     .mode = mode},
                    comm);
    for (int s = 0; s < steps; s++) {
      const step_result r = step.run(s);
      EXPECT_FALSE(r.discarded) << r.why;
    }
    if (mode == reduction::exact && steps > 0) {  // what the memory estimate counts
      EXPECT_LE(step.gradient_buffers(), peak_subtree_values(slots, world));
    }
    shas[static_cast<size_t>(rank)] =
        sha256_hex(model.params(), static_cast<size_t>(model.num_params()) * sizeof(float));
  }, std::chrono::seconds(30), kind);
  for (const auto& s : shas) EXPECT_EQ(s, shas.front()) << "ranks disagree on " << world;
  return shas.front();
}

class world_step : public ::testing::Test {
protected:
  void SetUp() override {
    splitmix64 rng(9);
    std::vector<uint16_t> tokens(20000);
    for (auto& t : tokens) t = static_cast<uint16_t>(rng.below(64) + 32);
    write_token_shard(shard(), tokens);
  }
  std::string shard() const { return dir_.file("tokens.bin"); }
  lz::test::temp_dir dir_{"lz-world-step"};
};

TEST_F(world_step, exact_reduction_gives_the_same_weights_on_1_to_4_ranks) {
  ASSERT_GT(owner_range(gpt2(small_model(), *lz::kernels::make_cpu_backend(1)).num_params(), 4, 3).size(), 0)
      << "the test model must give every rank a range";
  for (int64_t slots : {4, 6}) {
    const std::string one = train_on(1, slots, 8, reduction::exact, shard());
    EXPECT_NE(one, train_on(1, slots, 0, reduction::exact, shard())) << "training changed nothing";
    for (int world : {2, 3, 4}) {
      EXPECT_EQ(train_on(world, slots, 8, reduction::exact, shard()), one)
          << slots << " slots on " << world << " ranks";
    }
  }
}

TEST_F(world_step, over_gloo_the_exact_reduction_gives_the_in_process_weights) {
  for (int64_t slots : {4, 6}) {
    const std::string one = train_on(1, slots, 8, reduction::exact, shard());
    for (int world : {2, 3, 4}) {
      EXPECT_EQ(train_on(world, slots, 8, reduction::exact, shard(), transport::gloo), one)
          << slots << " slots on " << world << " ranks over Gloo";
    }
  }
}

TEST(gloo_communicator, collectives_match_the_in_process_ones) {
  for (transport kind : {transport::inproc, transport::gloo}) {
    on_threads(3, [&](int rank, communicator& c) {
      std::vector<int64_t> counts{2, 0, 3};
      std::vector<float> all(5, -1.0f);
      const int64_t at = prefix_offsets(counts)[static_cast<size_t>(rank)];
      for (int64_t i = 0; i < counts[static_cast<size_t>(rank)]; i++) all[static_cast<size_t>(at + i)] = static_cast<float>(rank * 10 + i);
      c.all_gather_v(all.data(), counts);
      EXPECT_EQ(all, (std::vector<float>{0, 1, 20, 21, 22})) << c.name();
      std::vector<int64_t> send_counts{1, 1, 1}, recv_counts{1, 1, 1};
      std::vector<float> send{static_cast<float>(rank), static_cast<float>(rank + 10),
                              static_cast<float>(rank + 20)};
      std::vector<float> recv(3);
      c.all_to_all_v(send.data(), send_counts, recv.data(), recv_counts);
      EXPECT_EQ(recv, (std::vector<float>{static_cast<float>(10 * rank), static_cast<float>(1 + 10 * rank),
                                          static_cast<float>(2 + 10 * rank)})) << c.name();
    }, std::chrono::seconds(30), kind);
  }
}

// Each rank sends rank + 1 (mod 3) a block whose size depends on the sender, and rank 0
// also sends rank 2 a second block under another tag; empty transfers are allowed.
TEST(communicator, exchange_moves_each_tagged_block_to_its_peer) {
  for (transport kind : {transport::inproc, transport::gloo}) {
    on_threads(3, [&](int rank, communicator& c) {
      const auto block = [](int from, int64_t n) {
        std::vector<float> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) v[static_cast<size_t>(i)] = static_cast<float>(from * 1000 + i);
        return v;
      };
      const int next = (rank + 1) % 3, prev = (rank + 2) % 3;
      std::vector<float> out = block(rank, 100 + rank), extra = block(7, 5), none;
      std::vector<float> in(static_cast<size_t>(100 + prev), -1.0f), in_extra(5, -1.0f);
      using t = communicator::transfer;
      std::vector<t> sends{{.peer = next, .tag = 1, .data = out.data(), .bytes = static_cast<int64_t>(out.size() * 4)}};
      std::vector<t> recvs{{.peer = prev, .tag = 1, .data = in.data(), .bytes = static_cast<int64_t>(in.size() * 4)}};
      if (rank == 0) sends.push_back({.peer = 2, .tag = 2, .data = extra.data(), .bytes = 20});
      if (rank == 2) recvs.push_back({.peer = 0, .tag = 2, .data = in_extra.data(), .bytes = 20});
      sends.push_back({.peer = next, .tag = 3, .data = none.data(), .bytes = 0});
      recvs.push_back({.peer = prev, .tag = 3, .data = none.data(), .bytes = 0});
      c.exchange(sends, recvs);
      EXPECT_EQ(in, block(prev, 100 + prev)) << c.name();
      if (rank == 2) {
        EXPECT_EQ(in_extra, block(7, 5)) << c.name();
      }
      c.exchange({}, {});  // a rank with nothing to move still takes part
    }, std::chrono::seconds(30), kind);
  }
}

TEST(gloo_communicator, a_peer_that_leaves_fails_the_collective_at_once) {
  std::string error;
  on_threads(2, [&](int rank, communicator& c) {
    if (rank == 1) {  // its sockets close as it leaves, like a killed process's
      c.barrier();    // but only once rank 0 is connected too (its connect would fail instead)
      return;
    }
    try {
      c.barrier();
      std::vector<float> x(4, 1.0f);
      c.all_reduce_sum(x.data(), 4);
    } catch (const comm_error& e) {
      error = e.what();
    }
  }, std::chrono::seconds(60), transport::gloo);  // far longer than the test may take
  EXPECT_NE(error.find("g7 rank 0 of 2"), std::string::npos) << error;
}

TEST(gloo_communicator, a_hung_peer_fails_the_collective_after_the_timeout) {
  std::string error;
  std::promise<void> failed;
  auto released = failed.get_future();
  on_threads(2, [&](int rank, communicator& c) {
    if (rank == 1) {  // alive, connected, but never joins: a hung rank
      released.wait_for(std::chrono::seconds(30));
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c.barrier();
    } catch (const comm_error& e) {
      error = e.what();
    }
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, std::chrono::milliseconds(400)) << "failed before the timeout";
    failed.set_value();
  }, std::chrono::milliseconds(400), transport::gloo);
  EXPECT_NE(error.find("g7 rank 0 of 2: barrier failed"), std::string::npos) << error;
}

// A fence: rank 1 waits in a collective; rank 0, fenced instead, aborts its communicator,
// and rank 1's collective fails long before the timeout.
TEST(gloo_communicator, an_aborting_rank_fails_its_peers_collective_at_once) {
  std::string error;
  on_threads(2, [&](int rank, communicator& c) {
    if (rank == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the barrier start
      c.abort();
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c.barrier();
    } catch (const comm_error& e) {
      error = e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10))
        << "the peer's abort did not end the wait";
  }, std::chrono::seconds(20), transport::gloo);
  EXPECT_NE(error.find("barrier failed"), std::string::npos) << error;
}

// A fence of a rank whose own collective waits on a hung peer (alive, connected, never
// joining): the abort, from another thread, ends that wait at once, long before the
// collective's timeout; the peer has not closed anything.
TEST(gloo_communicator, an_abort_ends_the_aborting_ranks_own_wait_at_once) {
  memory_store store;
  const auto timeout = std::chrono::seconds(60);
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread hung([&] {
    const std::unique_ptr<communicator> c = connect_gloo(store, 1, 2, 7, {.timeout = timeout});
    finished.wait_for(std::chrono::seconds(30));  // connected, never in a collective
  });
  timed_communicator c(connect_gloo(store, 0, 2, 7, {.timeout = timeout}));
  std::string error;
  std::chrono::steady_clock::duration waited{};
  std::thread waiter([&] {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c.barrier();
    } catch (const comm_error& e) {
      error = e.what();
    }
    waited = std::chrono::steady_clock::now() - t0;
  });
  for (int i = 0; i < 5000 && !c.in_collective(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(c.in_collective()) << "the barrier never started";
  c.abort();
  waiter.join();
  done.set_value();
  hung.join();
  EXPECT_LT(waited, std::chrono::seconds(10)) << "the abort did not end this rank's own wait";
  EXPECT_NE(error.find("g7 rank 0 of 2: barrier failed"), std::string::npos) << error;
  EXPECT_NE(error.find("the communicator was aborted"), std::string::npos) << error;
}

// A sender fenced in the middle of a large message: Gloo fails the waits of the operations
// queued on a failing connection, but not those of the message under way, on either side.
// The sender's abort ends its own send, the receiver's (its connection already reset by
// the sender's) ends its receive, both long before the timeout.
TEST(gloo_communicator, an_abort_ends_a_message_under_way_on_both_sides) {
  memory_store store;
  const auto timeout = std::chrono::seconds(60);
  const int64_t n = int64_t{1} << 28;  // 1 GiB of floats: many socket buffers' worth
  std::promise<communicator*> sender_ready;
  std::promise<void> sender_may_go;
  std::string sender_error;
  std::chrono::steady_clock::time_point sender_ended;
  std::thread sender([&] {
    const std::unique_ptr<communicator> c = connect_gloo(store, 1, 2, 7, {.timeout = timeout});
    std::vector<float> data(static_cast<size_t>(n), 1.0f);
    sender_ready.set_value(c.get());
    try {
      c->exchange({{.peer = 0, .tag = 0, .data = data.data(), .bytes = n * 4}}, {});
    } catch (const comm_error& e) {
      sender_error = e.what();
    }
    sender_ended = std::chrono::steady_clock::now();
    sender_may_go.get_future().wait_for(std::chrono::seconds(60));
  });
  timed_communicator c(connect_gloo(store, 0, 2, 7, {.timeout = timeout}));
  communicator* failing_sender = sender_ready.get_future().get();
  std::vector<float> in(static_cast<size_t>(n), -1.0f);
  std::string error;
  std::chrono::steady_clock::duration waited{};
  std::thread receiver([&] {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c.exchange({}, {{.peer = 1, .tag = 0, .data = in.data(), .bytes = n * 4}});
    } catch (const comm_error& e) {
      error = e.what();
    }
    waited = std::chrono::steady_clock::now() - t0;
  });
  const auto arrived = [&](size_t i) { return std::atomic_ref<float>(in[i]).load() != -1.0f; };
  for (int i = 0; i < 30000 && !arrived(0); i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const bool started = arrived(0);  // asserted once the threads are joined
  const auto aborted = std::chrono::steady_clock::now();
  failing_sender->abort();  // its connections reset, like a killed process's
  const bool cut = !arrived(in.size() - 1);
  c.abort();
  receiver.join();
  sender_may_go.set_value();
  sender.join();
  ASSERT_TRUE(started) << "the message never started to arrive";
  ASSERT_TRUE(cut) << "the whole message arrived before the sender failed: the case was not reached";
  EXPECT_LT(waited, std::chrono::seconds(10)) << "the abort did not end the receive under way";
  EXPECT_NE(error.find("g7 rank 0 of 2: exchange failed"), std::string::npos) << error;
  EXPECT_LT(sender_ended - aborted, std::chrono::seconds(10)) << "the abort did not end the send under way";
  EXPECT_NE(sender_error.find("g7 rank 1 of 2: exchange failed"), std::string::npos) << sender_error;
}

TEST_F(world_step, more_ranks_than_slots_still_train_the_same_weights) {
  const std::string one = train_on(1, 2, 6, reduction::exact, shard());
  EXPECT_EQ(train_on(3, 2, 6, reduction::exact, shard()), one);
}

TEST_F(world_step, fast_reduction_agrees_across_its_ranks_and_learns) {
  const std::string two = train_on(2, 4, 6, reduction::fast, shard());
  EXPECT_EQ(two.size(), 64u);
  EXPECT_EQ(train_on(2, 4, 6, reduction::fast, shard()), two) << "run to run at a fixed world";
}

}  // namespace
