// The RocksDB catalog: round trips, persistence across reopen, exclusive open, malformed
// records, and crash consistency at its fault points (a child process killed mid-commit).
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "checkpoint/catalog.hpp"
#include "config/error.hpp"
#include "tests/support/child_process.hpp"

extern char** environ;

namespace {

using lz::checkpoint::catalog;
using lz::checkpoint::checkpoint_record;
using lz::checkpoint::checkpoint_status;
using lz::checkpoint::shard_record;

// A checkpoint saved by `world` ranks, each shard holding an even slice of 1000 elements.
checkpoint_record make_record(int64_t step, int32_t world = 2) {
  checkpoint_record c;
  c.step = step;
  c.generation = step / 10 + 1;
  c.world_size = world;
  c.created_unix_ms = 1'700'000'000'000 + step;
  c.dir = "step_" + std::to_string(step);
  for (int32_t r = 0; r < world; ++r) {
    shard_record s;
    s.rank = r;
    s.file = c.dir + "/rank_" + std::to_string(r) + ".shard";
    s.bytes = 4096 + static_cast<uint64_t>(r);
    s.header_xxh3 = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(step + r + 1);
    s.range = {1000 * r / world, 1000 * (r + 1) / world};
    c.total_bytes += s.bytes;
    c.shards.push_back(s);
  }
  return c;
}

std::unique_ptr<catalog> open_or_create(const std::string& dir) {
  return catalog::exists(dir) ? catalog::open(dir) : catalog::create(dir, "run-under-test");
}

class catalog_test : public ::testing::Test {
protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "lz-catalog-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    std::filesystem::remove(dir_ + "-child.log");
  }

  std::unique_ptr<catalog> open() { return open_or_create(dir_); }

  // Runs this binary's crash helper with LAZARUS_FAULT=fault; returns its wait status.
  int run_child(const std::string& mode, const std::string& fault) {
    return lz::test::run_self("catalog_crash_child.commit_or_delete_until_killed",
                              {"LZ_CATALOG_CHILD_DIR=" + dir_, "LZ_CATALOG_CHILD_MODE=" + mode,
                               "LAZARUS_FAULT=" + fault},
                              dir_ + "-child.log", std::chrono::seconds(20));
  }

  static bool killed(int status) { return lz::test::killed_by_sigkill(status); }

  std::string dir_;
};

TEST_F(catalog_test, commit_get_list_latest_round_trip_with_shards) {
  auto cat = open();
  EXPECT_FALSE(cat->latest().has_value());
  EXPECT_FALSE(cat->get(10).has_value());
  EXPECT_TRUE(cat->list().empty());
  const checkpoint_record a = make_record(10, 2);
  const checkpoint_record b = make_record(20, 3);
  const checkpoint_record c = make_record(300, 1);
  cat->commit(b);
  cat->commit(a);
  cat->commit(c);
  ASSERT_TRUE(cat->get(20).has_value());
  EXPECT_EQ(*cat->get(20), b);
  EXPECT_EQ(cat->get(20)->shards.size(), 3u);
  EXPECT_EQ(cat->list(), (std::vector<checkpoint_record>{a, b, c}));
  ASSERT_TRUE(cat->latest().has_value());
  EXPECT_EQ(*cat->latest(), c);
  EXPECT_FALSE(cat->get(15).has_value());
  EXPECT_FALSE(cat->get(-1).has_value());
}

TEST_F(catalog_test, recommit_with_fewer_shards_leaves_no_stale_shard) {
  auto cat = open();
  cat->commit(make_record(10, 4));
  const checkpoint_record smaller = make_record(10, 2);
  cat->commit(smaller);
  EXPECT_EQ(*cat->get(10), smaller);
}

TEST_F(catalog_test, reopen_loses_nothing) {
  {
    auto cat = catalog::create(dir_, "run-abc");
    cat->commit(make_record(10));
    cat->commit(make_record(20));
    cat->mark_verified(10);
    cat->mark_corrupt(20, "rank 1 shard checksum mismatch");
  }
  auto cat = open();
  EXPECT_EQ(cat->run_id(), "run-abc");
  const auto all = cat->list();
  ASSERT_EQ(all.size(), 2u);
  checkpoint_record want10 = make_record(10);
  want10.verified = true;
  EXPECT_EQ(all[0], want10);
  EXPECT_EQ(all[1].status, checkpoint_status::corrupt);
  EXPECT_EQ(all[1].note, "rank 1 shard checksum mismatch");
  EXPECT_EQ(all[1].shards, make_record(20).shards);
}

TEST_F(catalog_test, create_records_the_run_id) {
  EXPECT_FALSE(catalog::exists(dir_));
  EXPECT_EQ(catalog::create(dir_, "r1")->run_id(), "r1");
  EXPECT_EQ(catalog::open(dir_)->run_id(), "r1");
}

TEST_F(catalog_test, latest_never_names_a_corrupt_checkpoint) {
  auto cat = open();
  cat->commit(make_record(10));
  cat->commit(make_record(20));
  cat->commit(make_record(30));
  cat->mark_corrupt(30, "bad");
  EXPECT_EQ(cat->latest()->step, 20);
  cat->mark_corrupt(20, "bad");
  cat->mark_corrupt(10, "bad");
  EXPECT_FALSE(cat->latest().has_value());
  EXPECT_EQ(cat->list().size(), 3u);
}

TEST_F(catalog_test, marking_a_missing_checkpoint_is_an_io_error) {
  auto cat = open();
  EXPECT_THROW(cat->mark_verified(5), lz::io_error);
  EXPECT_THROW(cat->mark_corrupt(5, "x"), lz::io_error);
}

TEST_F(catalog_test, events_keep_order_and_sequence_across_reopen) {
  int64_t first = 0;
  {
    auto cat = open();
    first = cat->append_event("checkpoint_committed", R"({"step":10})");
    EXPECT_EQ(cat->append_event("shard_corrupt", R"({"step":10,"rank":1})"), first + 1);
  }
  auto cat = open();
  EXPECT_EQ(cat->append_event("save_failed", "{}"), first + 2);
  const auto events = cat->events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].seq, first);
  EXPECT_EQ(events[0].kind, "checkpoint_committed");
  EXPECT_EQ(events[0].json, R"({"step":10})");
  EXPECT_EQ(events[1].kind, "shard_corrupt");
  EXPECT_EQ(events[2].seq, first + 2);
  EXPECT_EQ(events[2].kind, "save_failed");
  EXPECT_GT(events[2].unix_ms, 0);
}

TEST_F(catalog_test, interrupted_delete_stays_pending_across_reopen) {
  {
    auto cat = open();
    cat->commit(make_record(10));
    cat->commit(make_record(20));
    cat->commit(make_record(30));
    cat->begin_delete(20);
    cat->begin_delete(10);
  }
  {
    auto cat = open();
    EXPECT_EQ(cat->pending_deletes(), (std::vector<int64_t>{10, 20}));
    ASSERT_EQ(cat->list().size(), 1u);
    EXPECT_EQ(cat->list()[0].step, 30);
    EXPECT_FALSE(cat->get(20).has_value());
    cat->finish_delete(10);
  }
  auto cat = open();
  EXPECT_EQ(cat->pending_deletes(), (std::vector<int64_t>{20}));
  cat->finish_delete(20);
  EXPECT_TRUE(cat->pending_deletes().empty());
  cat->commit(make_record(20, 1));  // the step can be saved again: no stale shards
  EXPECT_EQ(*cat->get(20), make_record(20, 1));
}

TEST_F(catalog_test, second_open_while_held_is_refused_with_a_clear_io_error) {
  auto first = open();
  try {
    catalog::open(dir_);
    FAIL() << "a second open of a held catalog succeeded";
  } catch (const lz::io_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("another process holds"), std::string::npos) << what;
    EXPECT_NE(what.find(dir_ + "/catalog"), std::string::npos) << what;
  }
  first->commit(make_record(1));  // the first handle still works
  EXPECT_EQ(first->latest()->step, 1);
}

TEST_F(catalog_test, open_while_another_process_holds_it_is_refused) {
  auto held = open();
  const int status = run_child("open", "");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the child's open did not fail as expected; wait status " << status;
}

TEST_F(catalog_test, create_makes_a_missing_state_dir) {
  const std::string nested = dir_ + "/a/b/state";
  auto cat = catalog::create(nested, "run-under-test");
  cat->commit(make_record(3));
  EXPECT_TRUE(std::filesystem::is_directory(nested + "/catalog"));
}

TEST_F(catalog_test, malformed_record_is_a_format_error_naming_the_key) {
  open()->commit(make_record(9));
  {  // damage the record behind the catalog's back
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n : {"default", "checkpoints", "shards", "events", "meta"}) {
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    const auto s = rocksdb::DB::Open(rocksdb::DBOptions(), dir_ + "/catalog", cfs, &handles, &raw);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::unique_ptr<rocksdb::DB> db(raw);
    const std::string key("\0\0\0\0\0\0\0\x09", 8);
    EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), handles[1], key, "\x01short").ok());
    for (auto* h : handles) EXPECT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    EXPECT_TRUE(db->Close().ok());
  }
  auto cat = open();
  try {
    cat->get(9);
    FAIL() << "a malformed record decoded";
  } catch (const lz::format_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'checkpoints' key step 9"), std::string::npos) << what;
  }
  EXPECT_THROW(cat->list(), lz::format_error);
}

// Helper for the crash tests: runs only in a child process spawned by them.
TEST(catalog_crash_child, commit_or_delete_until_killed) {
  const char* dir = std::getenv("LZ_CATALOG_CHILD_DIR");
  const char* mode = std::getenv("LZ_CATALOG_CHILD_MODE");
  if (dir == nullptr || mode == nullptr) GTEST_SKIP() << "runs only as a crash-test child";
  if (std::string(mode) == "open") {  // the parent holds the catalog
    try {
      catalog::open(dir);
      ADD_FAILURE() << "opened a catalog that another process holds";
    } catch (const lz::io_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("another process holds"), std::string::npos) << what;
    }
    return;
  }
  auto cat = open_or_create(dir);
  cat->commit(make_record(5));
  cat->commit(make_record(7));
  if (std::string(mode) == "delete") cat->begin_delete(5);
}

TEST_F(catalog_test, crash_before_commit_leaves_the_previous_latest) {
  const int status = run_child("commit", "catalog.before_commit@7");
  EXPECT_TRUE(killed(status)) << "wait status " << status;
  auto cat = open();
  ASSERT_TRUE(cat->latest().has_value());
  EXPECT_EQ(*cat->latest(), make_record(5));
  EXPECT_FALSE(cat->get(7).has_value());
}

TEST_F(catalog_test, crash_after_commit_keeps_the_new_checkpoint) {
  const int status = run_child("commit", "catalog.after_commit@7");
  EXPECT_TRUE(killed(status)) << "wait status " << status;
  auto cat = open();
  ASSERT_TRUE(cat->latest().has_value());
  EXPECT_EQ(*cat->latest(), make_record(7));
}

TEST_F(catalog_test, crash_after_begin_delete_leaves_the_step_pending) {
  const int status = run_child("delete", "catalog.after_begin_delete@5");
  EXPECT_TRUE(killed(status)) << "wait status " << status;
  auto cat = open();
  EXPECT_EQ(cat->pending_deletes(), (std::vector<int64_t>{5}));
  ASSERT_EQ(cat->list().size(), 1u);
  EXPECT_EQ(cat->list()[0].step, 7);
  EXPECT_EQ(cat->latest()->step, 7);
}

}  // namespace
