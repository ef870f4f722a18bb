// The shard file and shard sets: round trips at every world size, resharding between them,
// and each kind of damage refused with the file and tensor named.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "checkpoint/reshard.hpp"
#include "checkpoint/shard_format.hpp"
#include "checkpoint/shard_set.hpp"
#include "config/error.hpp"
#include "tests/support/child_process.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace lz::checkpoint;

constexpr int64_t k_total = 10007;     // a multiple of no world size from 2 to 4
constexpr uint64_t k_chunk_bytes = 4096;  // 1024 floats: many chunks per tensor
const char* const k_names[] = {"params", "adam_m", "adam_v"};
// Set in a child process started by run_self(): the directory the child works in.
constexpr const char* k_child_dir_env = "LZ_SHARD_TEST_CHILD_DIR";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

template <class E = lz::error, class F>
std::optional<E> error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  }
  return std::nullopt;
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

void write_bytes(const std::string& path, uint64_t offset, const void* data, size_t size) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
}

uint64_t header_bytes_of(const std::string& path) {
  uint32_t h = 0;
  std::ifstream f(path, std::ios::binary);
  f.seekg(12);
  f.read(reinterpret_cast<char*>(&h), 4);
  return h;
}

class shard_files : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    // A child re-running this test must not clear the directory its parent works in.
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("shard-") + test->name() + (std::getenv(k_child_dir_env) ? "-child" : ""));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::mt19937 gen(20240326);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (auto& v : vectors_) {
      v.resize(k_total);
      for (float& x : v) x = normal(gen);
    }
    // Bit patterns a float comparison would miss: a NaN payload, -0, a denormal, infinity.
    const uint32_t specials[] = {0x7fc01234u, 0x80000000u, 0x00000001u, 0x7f800000u};
    for (size_t i = 0; i < 4; ++i) std::memcpy(&vectors_[i % 3][4093 + i * 1000], &specials[i], 4);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  shard_meta meta_for(int world, int rank, const std::string& run = "run-a", int64_t step = 100) {
    shard_meta m;
    m.run_id = run;
    m.step = step;
    m.generation = 2;
    m.world_size = world;
    m.rank = rank;
    m.flat_total = k_total;
    m.range = shard_range(k_total, world, rank);
    m.data_seed = 1337;
    m.rng_state = {1, 2, 3};
    m.model = "gpt2 L2 C64 NH4 V256 Vp256 T64";
    return m;
  }

  shard_info write_one(const std::string& p, const shard_meta& m) {
    std::vector<tensor_source> sources;
    for (size_t i = 0; i < 3; ++i) {
      sources.push_back({k_names[i], vectors_[i].data() + m.range.begin, m.range.size()});
    }
    return write_shard(p, m, sources, k_chunk_bytes);
  }

  // Writes the shards of one checkpoint saved by `world` ranks; paths in rank order.
  std::vector<std::string> save(int world, const std::string& sub, const std::string& run = "run-a",
                                int64_t step = 100) {
    fs::create_directories(dir_ / sub);
    std::vector<std::string> paths;
    for (int r = 0; r < world; ++r) {
      paths.push_back((dir_ / sub / ("rank" + std::to_string(r) + ".shard")).string());
      write_one(paths.back(), meta_for(world, r, run, step));
    }
    return paths;
  }

  const float* original(size_t tensor, int64_t at) const { return vectors_[tensor].data() + at; }

  // Runs this test again in a child process with `env` added, its output in
  // dir_/child.log; returns the wait status.
  int run_self(std::vector<std::string> env) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    env.push_back(std::string(k_child_dir_env) + "=" + dir_.string());
    const int status =
        lz::test::run_self(std::string(test->test_suite_name()) + "." + test->name(),
                           std::move(env), path("child.log"));
    fs::remove_all(dir_.string() + "-child");  // a killed child leaves its fixture dir
    return status;
  }

  std::string child_log() const {
    std::ifstream f(dir_ / "child.log");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  fs::path dir_;
  std::vector<float> vectors_[3];
};

TEST_F(shard_files, each_rank_reads_back_its_own_shard_bit_for_bit_at_every_world_size) {
  for (int world = 1; world <= 4; ++world) {
    const auto paths = save(world, "w" + std::to_string(world));
    for (int r = 0; r < world; ++r) {
      shard_reader reader(paths[static_cast<size_t>(r)]);
      const shard_meta& m = reader.info().meta;
      EXPECT_EQ(m.run_id, "run-a");
      EXPECT_EQ(m.step, 100);
      EXPECT_EQ(m.generation, 2);
      EXPECT_EQ(m.world_size, world);
      EXPECT_EQ(m.rank, r);
      EXPECT_EQ(m.range, shard_range(k_total, world, r));
      EXPECT_EQ(m.data_seed, 1337u);
      EXPECT_EQ(m.rng_state, (std::vector<uint64_t>{1, 2, 3}));
      EXPECT_EQ(m.model, "gpt2 L2 C64 NH4 V256 Vp256 T64");
      for (size_t t = 0; t < 3; ++t) {
        std::vector<float> got(static_cast<size_t>(m.range.size()));
        reader.read_range(k_names[t], m.range, got.data());
        EXPECT_EQ(std::memcmp(got.data(), original(t, m.range.begin), got.size() * 4), 0)
            << k_names[t] << " rank " << r << " of " << world;
      }
      reader.verify_all();
    }
  }
}

TEST_F(shard_files, every_resharding_between_one_and_four_ranks_is_bit_identical) {
  for (int world = 1; world <= 4; ++world) {
    auto paths = save(world, "w" + std::to_string(world));
    std::reverse(paths.begin(), paths.end());  // a set takes its files in any order
    shard_set set(paths);
    EXPECT_EQ(set.world_size(), world);
    EXPECT_EQ(set.meta().rank, 0);
    set.verify_all();
    for (int new_world = 1; new_world <= 4; ++new_world) {
      for (size_t t = 0; t < 3; ++t) {
        std::vector<float> assembled(k_total, 0.0f);
        for (int r = 0; r < new_world; ++r) {
          const flat_range want = shard_range(k_total, new_world, r);
          set.read(k_names[t], want, assembled.data() + want.begin);
        }
        EXPECT_EQ(std::memcmp(assembled.data(), original(t, 0), k_total * 4), 0)
            << k_names[t] << ": " << world << " -> " << new_world << " ranks";
      }
    }
  }
}

TEST_F(shard_files, tensors_start_on_page_boundaries_and_no_tmp_file_is_left) {
  const auto paths = save(3, "w3");
  for (const std::string& p : paths) {
    shard_reader reader(p);
    const shard_info& info = reader.info();
    EXPECT_EQ(fs::file_size(p), info.file_bytes);
    ASSERT_EQ(info.tensors.size(), 3u);
    uint64_t end = 24 + header_bytes_of(p);
    for (size_t t = 0; t < 3; ++t) {
      const tensor_entry& e = info.tensors[t];
      EXPECT_EQ(e.name, k_names[t]);
      EXPECT_EQ(e.dtype, "f32");
      EXPECT_EQ(e.offset % 4096, 0u) << e.name;
      EXPECT_GE(e.offset, end) << e.name;
      EXPECT_EQ(e.bytes, static_cast<uint64_t>(info.meta.range.size()) * 4);
      EXPECT_EQ(e.chunk_bytes, k_chunk_bytes);
      EXPECT_EQ(e.chunk_xxh3.size(), (e.bytes + k_chunk_bytes - 1) / k_chunk_bytes);
      end = e.offset + e.bytes;
    }
  }
  const shard_info written = write_one(path("again.shard"), meta_for(3, 1));
  shard_reader again(path("again.shard"));
  EXPECT_EQ(written.header_xxh3, again.info().header_xxh3);
  EXPECT_EQ(written.file_bytes, again.info().file_bytes);
  EXPECT_EQ(written.tensors[2].offset, again.info().tensors[2].offset);
  EXPECT_EQ(written.tensors[2].chunk_xxh3, again.info().tensors[2].chunk_xxh3);
  for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
    EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
  }
}

TEST_F(shard_files, a_flipped_data_byte_fails_only_the_reads_that_touch_its_chunk) {
  const std::string p = save(1, "w1")[0];
  const uint64_t adam_m_offset = shard_reader(p).info().tensors[1].offset;
  flip_byte(p, adam_m_offset + 2 * k_chunk_bytes + 10);  // chunk 2: elements 2048..3071
  shard_reader reader(p);
  std::vector<float> got(k_total);
  for (const flat_range touching : {flat_range{2500, 2600}, flat_range{2048, 3072},
                                    flat_range{0, k_total}}) {
    const auto e = error_of<corrupt_shard>([&] { reader.read_range("adam_m", touching, got.data()); });
    ASSERT_TRUE(e.has_value()) << "range [" << touching.begin << ", " << touching.end << ")";
    EXPECT_EQ(e->path(), p);
    EXPECT_EQ(e->tensor(), "adam_m");
    EXPECT_TRUE(contains(e->what(), "chunk 2")) << e->what();
    EXPECT_TRUE(contains(e->what(), p)) << e->what();
  }
  for (const flat_range clean : {flat_range{0, 2048}, flat_range{3072, k_total}, flat_range{5, 6}}) {
    reader.read_range("adam_m", clean, got.data());
    EXPECT_EQ(std::memcmp(got.data(), original(1, clean.begin), clean.size() * 4), 0);
  }
  reader.read_range("params", {0, k_total}, got.data());
  const auto verify = error_of<corrupt_shard>([&] { reader.verify_all(); });
  ASSERT_TRUE(verify.has_value());
  EXPECT_EQ(verify->tensor(), "adam_m");
  shard_set set({p});
  EXPECT_TRUE(
      error_of<corrupt_shard>([&] { set.read("adam_m", {2000, 3000}, got.data()); }).has_value());
  set.read("adam_v", {2000, 3000}, got.data());
}

TEST_F(shard_files, a_flipped_header_byte_fails_the_header_checksum) {
  const std::string p = save(1, "w1")[0];
  flip_byte(p, 24 + header_bytes_of(p) / 2);
  const auto e = error_of<corrupt_shard>([&] { shard_reader r(p); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->tensor(), "<header>");
  EXPECT_EQ(e->path(), p);
  EXPECT_TRUE(contains(e->what(), "checksum")) << e->what();
  EXPECT_TRUE(contains(e->what(), "lazarus ckpt verify")) << e->what();
}

TEST_F(shard_files, a_file_cut_inside_a_tensor_names_the_first_tensor_cut) {
  const std::string p = save(2, "w2")[1];
  const uint64_t adam_m_offset = shard_reader(p).info().tensors[1].offset;
  fs::resize_file(p, adam_m_offset + 1000);
  const auto e = error_of<corrupt_shard>([&] { shard_reader r(p); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->tensor(), "adam_m");
  EXPECT_TRUE(contains(e->what(), "truncated")) << e->what();
}

TEST_F(shard_files, a_file_cut_inside_the_header_is_reported_as_truncated) {
  const std::string p = save(1, "w1")[0];
  for (uint64_t cut : {24 + header_bytes_of(p) / 2, uint64_t{12}}) {
    fs::resize_file(p, cut);
    const auto e = error_of<corrupt_shard>([&] { shard_reader r(p); });
    ASSERT_TRUE(e.has_value()) << "cut at " << cut;
    EXPECT_EQ(e->tensor(), "<header>");
    EXPECT_TRUE(contains(e->what(), "truncated")) << e->what();
  }
}

TEST_F(shard_files, a_set_with_a_missing_rank_is_refused) {
  const auto paths = save(3, "w3");
  const auto e = error_of<lz::format_error>([&] { shard_set s({paths[0], paths[2]}); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "rank 1 of 3 is missing")) << e->what();
  const auto twice = error_of<lz::format_error>([&] { shard_set s({paths[0], paths[1], paths[1]}); });
  ASSERT_TRUE(twice.has_value());
  EXPECT_TRUE(contains(twice->what(), "both rank 1 of 3")) << twice->what();
}

TEST_F(shard_files, a_shard_from_another_run_is_named_in_the_refusal) {
  const auto a = save(3, "a", "run-a");
  const auto b = save(3, "b", "run-b");
  const auto e = error_of<lz::format_error>([&] { shard_set s({a[0], b[1], a[2]}); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "shard '" + b[1] + "' is from run 'run-b', the others from "
                                  "run 'run-a'")) << e->what();
}

TEST_F(shard_files, a_shard_from_another_step_is_named_in_the_refusal) {
  const auto old_step = save(2, "s100", "run-a", 100);
  const auto new_step = save(2, "s200", "run-a", 200);
  const auto e = error_of<lz::format_error>([&] { shard_set s({new_step[0], old_step[1]}); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "is from step 100, the others from step 200")) << e->what();
  EXPECT_TRUE(contains(e->what(), old_step[1])) << e->what();
}

TEST_F(shard_files, a_file_with_another_magic_says_what_it_looks_like) {
  const std::string p = save(1, "w1")[0];
  const int32_t model_magic = 20240326, token_magic = 20240520;
  write_bytes(p, 0, &model_magic, 4);
  auto e = error_of<lz::format_error>([&] { shard_reader r(p); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "llm.c model file")) << e->what();
  write_bytes(p, 0, &token_magic, 4);
  e = error_of<lz::format_error>([&] { shard_reader r(p); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "token shard")) << e->what();
  write_bytes(p, 0, "{\"json\":", 8);
  e = error_of<lz::format_error>([&] { shard_reader r(p); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "not a Lazarus checkpoint shard")) << e->what();
  EXPECT_TRUE(contains(e->what(), p)) << e->what();
}

TEST_F(shard_files, a_shard_from_a_future_format_version_is_refused_with_both_versions) {
  const std::string p = save(1, "w1")[0];
  const uint32_t future = k_shard_format_version + 1;
  write_bytes(p, 8, &future, 4);
  const auto e = error_of<lz::format_error>([&] { shard_reader r(p); });
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(contains(e->what(), "version 2; this build reads version 1")) << e->what();
  EXPECT_TRUE(contains(e->what(), "newer")) << e->what();
}

TEST_F(shard_files, a_full_disk_fails_the_write_and_leaves_no_file_behind) {
  if (const char* dir = std::getenv(k_child_dir_env)) {  // the child, with the fault armed
    const std::string p = std::string(dir) + "/out/rank0.shard";
    const auto e = error_of<lz::io_error>([&] { write_one(p, meta_for(1, 0)); });
    ASSERT_TRUE(e.has_value()) << "the write succeeded on a full disk";
    EXPECT_TRUE(contains(e->what(), "disk is full")) << e->what();
    EXPECT_TRUE(contains(e->what(), p + ".tmp")) << e->what();
    EXPECT_FALSE(fs::exists(p));
    EXPECT_FALSE(fs::exists(p + ".tmp"));
    return;
  }
  fs::create_directories(dir_ / "out");
  const int status = run_self({"LAZARUS_FAULT=shard.write:enospc"});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << child_log();
  EXPECT_TRUE(contains(child_log(), "1 test")) << child_log();  // it did run the test
  EXPECT_TRUE(fs::is_empty(dir_ / "out"));
}

TEST_F(shard_files, a_crash_mid_write_leaves_the_previous_shard_in_place) {
  if (const char* dir = std::getenv(k_child_dir_env)) {  // killed after the header is written
    write_one(std::string(dir) + "/out/rank0.shard", meta_for(1, 0, "run-a", 200));
    return;
  }
  fs::create_directories(dir_ / "out");
  const std::string p = (dir_ / "out" / "rank0.shard").string();
  write_one(p, meta_for(1, 0, "run-a", 100));
  const int status = run_self({"LAZARUS_FAULT=shard.mid_write@200"});
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << child_log();
  EXPECT_TRUE(fs::exists(p + ".tmp"));  // the kill came mid-write
  shard_reader reader(p);
  EXPECT_EQ(reader.info().meta.step, 100);
  reader.verify_all();
}

}  // namespace
