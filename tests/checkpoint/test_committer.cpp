// The committer: one decision per step for every rank, a commit only when every shard is
// durable, a failed rank fails the whole save and its directory goes, skip and wait.
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "checkpoint/catalog.hpp"
#include "checkpoint/committer.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace lz::checkpoint;

class committer_test : public ::testing::Test {
protected:
  std::string root() const { return dir_.path() + "/state/checkpoints"; }
  // A shard file this rank "wrote", and its record.
  shard_record shard(int64_t step, int32_t rank, int32_t world) {
    const std::string rel = checkpoint_dir_name(step) + "/" + shard_file_name(rank, world);
    fs::create_directories(fs::path(root()) / checkpoint_dir_name(step));
    std::ofstream(root() + "/" + rel) << "bytes of rank " << rank;
    return {rank, rel, 14, 0x1234u + static_cast<uint64_t>(rank), {100 * rank, 100 * (rank + 1)}};
  }

  lz::test::temp_dir dir_{"lz-committer"};
  std::unique_ptr<catalog> cat_ = catalog::create(dir_.path() + "/state", "run-a");
  std::shared_ptr<spdlog::logger> log_ =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
};

TEST_F(committer_test, commits_only_when_every_rank_is_durable) {
  committer c(*cat_, {root(), {3, 0}, false}, log_);
  EXPECT_TRUE(c.begin(5, 3, 1));
  EXPECT_TRUE(c.begin(5, 3, 1)) << "every rank gets the first rank's answer";
  EXPECT_EQ(cat_->inflight_saves().size(), 1u);
  c.shard_durable(5, shard(5, 2, 3));
  c.shard_durable(5, shard(5, 0, 3));
  EXPECT_FALSE(cat_->get(5).has_value()) << "committed before every shard was durable";
  c.shard_durable(5, shard(5, 1, 3));
  const auto record = cat_->get(5);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->world_size, 3);
  ASSERT_EQ(record->shards.size(), 3u);
  for (int32_t r = 0; r < 3; r++) EXPECT_EQ(record->shards[static_cast<size_t>(r)].rank, r);
  EXPECT_TRUE(cat_->inflight_saves().empty());
  EXPECT_EQ(c.stats().committed, 1);
  committer after_restart(*cat_, {root(), {3, 0}, false}, log_);
  EXPECT_FALSE(after_restart.begin(5, 3, 1)) << "a committed step is never saved again";
}

TEST_F(committer_test, one_failed_rank_fails_the_save_and_its_directory_goes) {
  committer c(*cat_, {root(), {3, 0}, false}, log_);
  ASSERT_TRUE(c.begin(5, 2, 1));
  c.shard_durable(5, shard(5, 0, 2));
  c.shard_failed(5, 1, "the disk is full");
  EXPECT_FALSE(cat_->get(5).has_value());
  EXPECT_FALSE(fs::exists(root() + "/step_00000005"));
  EXPECT_TRUE(cat_->inflight_saves().empty());
  EXPECT_EQ(c.stats().failed, 1);
  EXPECT_EQ(cat_->events().back().kind, "save_failed");
  EXPECT_NE(cat_->events().back().json.find("rank 1: the disk is full"), std::string::npos);
  EXPECT_TRUE(c.begin(10, 2, 1)) << "the next save goes ahead";
}

TEST_F(committer_test, a_save_of_a_fenced_generation_is_abandoned_and_only_that_one) {
  committer c(*cat_, {root(), {3, 0}, false}, log_);
  ASSERT_TRUE(c.begin(5, 2, 1));
  c.shard_durable(5, shard(5, 0, 2));  // rank 1 died before its shard was durable
  EXPECT_FALSE(c.abandon_older_than(1, "same generation").has_value()) << "its world lives";
  const auto step = c.abandon_older_than(2, "its world (generation 1) failed");
  ASSERT_EQ(step, std::optional<int64_t>(5));
  EXPECT_FALSE(c.step_in_flight().has_value());
  EXPECT_FALSE(fs::exists(root() + "/step_00000005")) << "recorded in flight, so it may go";
  EXPECT_TRUE(cat_->inflight_saves().empty());
  EXPECT_NE(cat_->events().back().json.find("generation 1) failed"), std::string::npos);
  EXPECT_FALSE(c.abandon_older_than(2, "again").has_value()) << "nothing left in flight";
  ASSERT_TRUE(c.begin(10, 2, 2));
  c.shard_durable(10, shard(10, 0, 2));
  c.shard_durable(10, shard(10, 1, 2));
  EXPECT_TRUE(cat_->get(10).has_value()) << "the next generation saves as before";
}

TEST_F(committer_test, the_next_generation_saves_an_abandoned_step_again_and_commits_it) {
  committer c(*cat_, {root(), {3, 0}, false}, log_);
  ASSERT_TRUE(c.begin(5, 2, 1));
  ASSERT_TRUE(c.begin(5, 2, 1)) << "every rank of a world gets the same answer";
  c.shard_durable(5, shard(5, 0, 2));
  ASSERT_EQ(c.abandon_older_than(2, "its world (generation 1) failed"), std::optional<int64_t>(5));
  // the world of generation 2 restored from before step 5 and reaches it again
  ASSERT_TRUE(c.begin(5, 2, 2));
  EXPECT_EQ(c.step_in_flight(), std::optional<int64_t>(5)) << "a save in flight, not a stale answer";
  c.shard_durable(5, shard(5, 0, 2));
  c.shard_durable(5, shard(5, 1, 2));
  ASSERT_TRUE(cat_->get(5).has_value());
  EXPECT_EQ(cat_->get(5)->status, checkpoint_status::committed);
}

TEST_F(committer_test, skip_policy_skips_for_every_rank_while_a_save_is_in_flight) {
  committer c(*cat_, {root(), {3, 0}, true}, log_);
  ASSERT_TRUE(c.begin(5, 2, 1));
  EXPECT_FALSE(c.begin(10, 2, 1));
  EXPECT_FALSE(c.begin(10, 2, 1));
  EXPECT_EQ(c.stats().skipped, 1);
  c.shard_durable(5, shard(5, 0, 2));
  c.shard_durable(5, shard(5, 1, 2));
  EXPECT_TRUE(c.begin(15, 2, 1));
}

TEST_F(committer_test, wait_policy_blocks_until_the_save_in_flight_is_done) {
  committer c(*cat_, {root(), {3, 0}, false}, log_);
  ASSERT_TRUE(c.begin(5, 1, 1));
  auto next = std::async(std::launch::async, [&] { return c.begin(10, 1, 1); });
  EXPECT_EQ(next.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "did not wait for the save in flight";
  c.shard_durable(5, shard(5, 0, 1));
  EXPECT_TRUE(next.get());
  EXPECT_TRUE(cat_->get(5).has_value());
}

}  // namespace
