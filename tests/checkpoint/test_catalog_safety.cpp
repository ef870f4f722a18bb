// The catalog never loses a run: it is never created over another one, a lost or damaged
// one is an error that changes nothing, only recorded in-flight saves are cleaned up, and a
// lost catalog can be rebuilt from the shard files.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "checkpoint/catalog.hpp"
#include "checkpoint/catalog_rebuild.hpp"
#include "checkpoint/committer.hpp"
#include "checkpoint/restore.hpp"
#include "checkpoint/shard_format.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace lz::checkpoint;

constexpr int64_t k_total = 3000;

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lz::error& e) {
    return e.what();
  }
  return "";
}

// Every file under `dir` with its size: what a refused command must leave as it was.
std::map<std::string, uintmax_t> snapshot_tree(const std::string& dir) {
  std::map<std::string, uintmax_t> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out[e.path().string()] = e.is_regular_file() ? e.file_size() : 0;
  }
  return out;
}

class catalog_safety : public ::testing::Test {
protected:
  std::string state() const { return dir_.path() + "/state"; }
  std::string root() const { return state() + "/checkpoints"; }

  // Writes the shards of step `step` saved by `world` ranks under root()/step_N/ and
  // returns the record a commit of it would write.
  checkpoint_record save(int64_t step, int world = 2, const std::string& run = "run-a") {
    const std::string dir = checkpoint_dir_name(step);
    fs::create_directories(fs::path(root()) / dir);
    std::vector<float> values(k_total);
    for (int64_t i = 0; i < k_total; ++i) values[static_cast<size_t>(i)] = static_cast<float>(i + step);
    checkpoint_record r;
    r.step = step;
    r.world_size = world;
    r.dir = dir;
    for (int rank = 0; rank < world; ++rank) {
      shard_meta m;
      m.run_id = run;
      m.step = step;
      m.world_size = world;
      m.rank = rank;
      m.flat_total = k_total;
      m.range = shard_range(k_total, world, rank);
      m.model = "gpt2 test";
      const std::string file = dir + "/shard_" + std::to_string(rank) + ".lzs";
      const auto info = write_shard(root() + "/" + file, m,
                                    {{"params", values.data() + m.range.begin, m.range.size()}});
      r.shards.push_back({rank, file, info.file_bytes, info.header_xxh3, m.range});
      r.total_bytes += info.file_bytes;
    }
    return r;
  }

  std::shared_ptr<spdlog::logger> log_ =
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
  lz::test::temp_dir dir_{"lz-catalog-safety"};
};

TEST_F(catalog_safety, open_never_creates_a_catalog) {
  const std::string what = what_of([&] { catalog::open(state()); });
  EXPECT_NE(what.find("has no checkpoint catalog"), std::string::npos) << what;
  EXPECT_FALSE(fs::exists(state() + "/catalog"));
}

TEST_F(catalog_safety, create_refuses_over_an_existing_catalog) {
  catalog::create(state(), "run-a")->commit(save(5));
  const std::string what = what_of([&] { catalog::create(state(), "run-b"); });
  EXPECT_NE(what.find("never created over another one"), std::string::npos) << what;
  EXPECT_EQ(catalog::open(state())->run_id(), "run-a");
  EXPECT_EQ(catalog::open(state())->list().size(), 1u);
}

TEST_F(catalog_safety, missing_current_file_is_an_error_that_changes_nothing) {
  catalog::create(state(), "run-a")->commit(save(5));
  fs::remove(state() + "/catalog/CURRENT");
  const auto before = snapshot_tree(state());
  for (auto access : {catalog_access::read_write, catalog_access::read_only}) {
    const std::string what = what_of([&] { catalog::open(state(), access); });
    EXPECT_NE(what.find("CURRENT is missing"), std::string::npos) << what;
    EXPECT_NE(what.find("lazarus ckpt rebuild-catalog " + state()), std::string::npos) << what;
  }
  EXPECT_EQ(snapshot_tree(state()), before);
}

TEST_F(catalog_safety, deleted_write_ahead_log_loses_no_record) {
  {
    auto cat = catalog::create(state(), "run-a");
    cat->commit(save(5));
    cat->append_event("x", "{}");
  }
  int removed = 0;
  for (const auto& e : fs::directory_iterator(state() + "/catalog")) {
    if (e.path().extension() == ".log") removed += fs::remove(e.path()) ? 1 : 0;
  }
  ASSERT_GT(removed, 0);
  auto cat = catalog::open(state());
  ASSERT_EQ(cat->list().size(), 1u);
  EXPECT_EQ(cat->list()[0].step, 5);
  EXPECT_EQ(cat->events().size(), 1u);
}

TEST_F(catalog_safety, deleted_table_file_is_an_error_not_an_emptier_catalog) {
  catalog::create(state(), "run-a")->commit(save(5));
  int removed = 0;
  for (const auto& e : fs::directory_iterator(state() + "/catalog")) {
    if (e.path().extension() == ".sst") removed += fs::remove(e.path()) ? 1 : 0;
  }
  ASSERT_GT(removed, 0);
  const auto before = snapshot_tree(state());
  const std::string what = what_of([&] { catalog::open(state()); });
  EXPECT_NE(what.find("is damaged"), std::string::npos) << what;
  EXPECT_NE(what.find("rebuild-catalog"), std::string::npos) << what;
  EXPECT_EQ(snapshot_tree(state()), before);
}

TEST_F(catalog_safety, lost_manifest_is_reported_as_damage_with_the_fix) {
  catalog::create(state(), "run-a")->commit(save(5));
  for (const auto& e : fs::directory_iterator(state() + "/catalog")) {
    if (e.path().filename().string().starts_with("MANIFEST")) fs::remove(e.path());
  }
  const std::string what = what_of([&] { catalog::open(state()); });
  EXPECT_NE(what.find("is damaged"), std::string::npos) << what;
  EXPECT_NE(what.find("rebuild-catalog"), std::string::npos) << what;
  EXPECT_EQ(what.find("Assertion"), std::string::npos) << what;
}

TEST_F(catalog_safety, read_only_open_sees_a_live_catalog_without_its_lock) {
  auto writer = catalog::create(state(), "run-a");
  writer->commit(save(5));
  auto reader = catalog::open(state(), catalog_access::read_only);
  ASSERT_EQ(reader->list().size(), 1u);
  EXPECT_EQ(reader->list()[0].step, 5);
  writer->commit(save(10));  // the writer is not blocked by the reader
  EXPECT_EQ(catalog::open(state(), catalog_access::read_only)->list().size(), 2u);
}

TEST_F(catalog_safety, a_passing_verify_clears_a_corrupt_mark) {
  auto cat = catalog::create(state(), "run-a");
  cat->commit(save(5));
  cat->mark_corrupt(5, "checksum mismatch");
  EXPECT_FALSE(cat->latest().has_value());
  cat->mark_verified(5);
  ASSERT_TRUE(cat->latest().has_value());
  EXPECT_EQ(cat->latest()->status, checkpoint_status::committed);
  EXPECT_TRUE(cat->latest()->verified);
  EXPECT_EQ(cat->latest()->note, "");
}

TEST_F(catalog_safety, commit_forgets_the_in_flight_record) {
  auto cat = catalog::create(state(), "run-a");
  cat->begin_save(5, "step_00000005");
  cat->begin_save(10, "step_00000010");
  ASSERT_EQ(cat->inflight_saves().size(), 2u);
  cat->commit(save(5));
  ASSERT_EQ(cat->inflight_saves().size(), 1u);
  EXPECT_EQ(cat->inflight_saves()[0].step, 10);
  EXPECT_EQ(cat->inflight_saves()[0].dir, "step_00000010");
  cat->abort_save(10);
  EXPECT_TRUE(cat->inflight_saves().empty());
}

TEST_F(catalog_safety, recover_removes_only_recorded_in_flight_saves) {
  auto cat = catalog::create(state(), "run-a");
  cat->commit(save(5));
  cat->begin_save(10, "step_00000010");
  save(10);           // the save in flight, killed before its commit
  save(15);           // a directory the catalog never heard of
  EXPECT_EQ(unrecorded_checkpoint_dirs(*cat, root()), std::vector<std::string>{"step_00000015"});
  committer(*cat, {root(), {3, 0}, false}, log_).recover();
  EXPECT_TRUE(fs::exists(root() + "/step_00000005"));
  EXPECT_FALSE(fs::exists(root() + "/step_00000010"));
  EXPECT_TRUE(fs::exists(root() + "/step_00000015")) << "never delete what has no record";
  EXPECT_TRUE(cat->inflight_saves().empty());
  const auto events = cat->events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, "uncommitted_removed");
}

TEST_F(catalog_safety, unreadable_checkpoint_is_not_marked_corrupt_but_a_damaged_one_is) {
  auto cat = catalog::create(state(), "run-a");
  cat->commit(save(5));
  cat->commit(save(10));
  cat->commit(save(15));
  fs::remove(root() + "/step_00000015/shard_1.lzs");                 // missing: not proof
  fs::resize_file(root() + "/step_00000010/shard_0.lzs", 100);       // truncated: proof
  std::vector<float> out(k_total);
  const auto outcome = restore_latest(*cat, root(), {{"params", {0, k_total}, out.data()}},
                                      {"gpt2 test", k_total}, *log_);
  ASSERT_TRUE(outcome.restored.has_value());
  EXPECT_EQ(outcome.restored->record.step, 5);
  EXPECT_EQ(out[7], 7.0f + 5.0f);
  ASSERT_EQ(outcome.failures.size(), 2u);
  EXPECT_EQ(outcome.failures[0].step, 15);
  EXPECT_FALSE(outcome.failures[0].corrupt);
  EXPECT_EQ(outcome.failures[1].step, 10);
  EXPECT_TRUE(outcome.failures[1].corrupt);
  EXPECT_EQ(cat->get(15)->status, checkpoint_status::committed);
  EXPECT_EQ(cat->get(10)->status, checkpoint_status::corrupt);
}

TEST_F(catalog_safety, a_shard_file_other_than_the_committed_one_is_refused) {
  const checkpoint_record r = save(5);
  checkpoint_record wrong = r;  // as if the file had been replaced after the commit
  wrong.shards[0].header_xxh3 ^= 1;
  const std::string what = what_of([&] { open_checkpoint(wrong, root()); });
  EXPECT_NE(what.find("is not the shard the catalog committed"), std::string::npos) << what;
  EXPECT_NO_THROW(open_checkpoint(r, root()));
}

TEST_F(catalog_safety, rebuild_restores_complete_checkpoints_and_leaves_the_rest_alone) {
  std::vector<checkpoint_record> committed;
  {
    auto cat = catalog::create(state(), "run-a");
    cat->set_meta(k_meta_spec, "[run]\nsteps = 20\n");
    for (int64_t step : {5, 10}) {
      committed.push_back(save(step));
      cat->commit(committed.back());
    }
    cat->append_event("checkpoint_committed", "{\"step\":10}");
  }
  save(15);                                                   // complete, never committed
  fs::remove(root() + "/step_00000015/shard_1.lzs");          // ... now incomplete
  fs::create_directories(root() + "/step_00000020");          // a save that wrote nothing
  fs::remove(state() + "/catalog/CURRENT");                   // the catalog is damaged
  const rebuild_report report = rebuild_catalog({state(), root(), "run-a", std::nullopt});
  EXPECT_EQ(report.run_id, "run-a");
  ASSERT_EQ(report.added.size(), 2u);
  EXPECT_EQ(report.left_alone.size(), 2u);
  EXPECT_FALSE(report.carried_over);
  ASSERT_FALSE(report.old_catalog.empty());
  EXPECT_TRUE(fs::exists(report.old_catalog)) << "the damaged catalog is kept";
  auto cat = catalog::open(state());
  EXPECT_EQ(cat->run_id(), "run-a");
  ASSERT_EQ(cat->list().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(cat->list()[i].shards, committed[i].shards);
    EXPECT_TRUE(cat->list()[i].verified);
  }
  EXPECT_EQ(cat->meta(k_meta_checkpoint_root), root());
  EXPECT_TRUE(unrecorded_checkpoint_dirs(*cat, root()).empty());
  EXPECT_TRUE(fs::exists(root() + "/step_00000015/shard_0.lzs")) << "left alone, not deleted";
}

TEST_F(catalog_safety, rebuild_carries_a_readable_catalog_over_and_refuses_mixed_runs) {
  {
    auto cat = catalog::create(state(), "run-a");
    cat->set_meta(k_meta_spec, "[run]\nsteps = 20\n");
    cat->commit(save(5));
    cat->append_event("checkpoint_committed", "{\"step\":5}");
  }
  const rebuild_report report = rebuild_catalog({state(), root(), "run-a", std::nullopt});
  EXPECT_TRUE(report.carried_over);
  EXPECT_EQ(report.events_carried, 1);
  auto cat = catalog::open(state());
  EXPECT_EQ(cat->meta(k_meta_spec), "[run]\nsteps = 20\n");
  EXPECT_EQ(cat->events().front().kind, "checkpoint_committed");
  cat.reset();

  save(10, 2, "run-b");  // another run's checkpoint in the same directory
  const auto before = snapshot_tree(state());
  const std::string what = what_of([&] { rebuild_catalog({state(), root(), "run-a", std::nullopt}); });
  EXPECT_NE(what.find("holds the checkpoints of 2 runs"), std::string::npos) << what;
  EXPECT_EQ(snapshot_tree(state()), before);
}

}  // namespace
