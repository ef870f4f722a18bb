// checkpoint_bench: saving and loading a GPT-2 124M training state (weights and AdamW
// moments, 3 x 124.5M fp32 = 1.49 GB) against plain file I/O measured in the same run, and
// the stall an asynchronous save costs the training step.
//
//   checkpoint_bench [--json] [--dir DIR] [--skip-stall]
//
// Baselines: a plain sequential write of the same bytes in 16 MiB write() calls followed
// by fsync, and a plain sequential read of that file. Page cache is dropped for each file
// with posix_fadvise(DONTNEED) after its fsync, so reads come from the disk (as far as the
// VM's disk lets us tell).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "actors/rank_session.hpp"
#include "bench/bench_support.hpp"
#include "checkpoint/catalog.hpp"
#include "checkpoint/committer.hpp"
#include "checkpoint/file_io.hpp"
#include "checkpoint/shard_format.hpp"
#include "checkpoint/shard_set.hpp"
#include "config/json_writer.hpp"
#include "engine/dataset.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/param_layout.hpp"
#include "engine/rng.hpp"

namespace {

namespace fs = std::filesystem;
using lz::bench::median;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void drop_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Plain sequential write of the buffers (16 MiB per call) and fsync; returns seconds.
double plain_write(const std::string& path, const std::vector<std::vector<float>>& parts) {
  const auto t0 = clock_type::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::perror("open");
    std::exit(1);
  }
  for (const auto& p : parts) {
    const char* data = reinterpret_cast<const char*>(p.data());
    size_t left = p.size() * sizeof(float);
    while (left > 0) {
      const ssize_t n = ::write(fd, data, std::min<size_t>(left, 16u << 20));
      if (n <= 0) {
        std::perror("write");
        std::exit(1);
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
  }
  ::fsync(fd);
  ::close(fd);
  return seconds_since(t0);
}

double plain_read(const std::string& path, std::vector<std::vector<float>>& parts) {
  const auto t0 = clock_type::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  for (auto& p : parts) {
    char* data = reinterpret_cast<char*>(p.data());
    size_t left = p.size() * sizeof(float);
    while (left > 0) {
      const ssize_t n = ::read(fd, data, std::min<size_t>(left, 16u << 20));
      if (n <= 0) {
        std::perror("read");
        std::exit(1);
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
  }
  ::close(fd);
  return seconds_since(t0);
}

void print_json(bool json, const lz::config::json_object& o) {
  if (json) std::printf("%s\n", o.str().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false, skip_stall = false;
  std::string dir = (fs::temp_directory_path() / "lazarus-checkpoint-bench").string();
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--skip-stall") skip_stall = true;
    else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: checkpoint_bench [--json] [--dir DIR] [--skip-stall]\n");
      return 2;
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  const lz::engine::gpt2_config cfg{1024, 50257, 50304, 12, 12, 768};
  const int64_t P = lz::engine::param_layout(cfg).total();
  std::vector<std::vector<float>> state(3, std::vector<float>(static_cast<size_t>(P)));
  lz::engine::splitmix64 rng(1);
  for (auto& v : state)
    for (auto& x : v) x = static_cast<float>(rng.uniform());
  const double bytes = 3.0 * static_cast<double>(P) * sizeof(float);
  const double mib = bytes / (1 << 20);

  // 1. write and read bandwidth, five rounds each, medians
  std::vector<double> plain_w, plain_r, shard_w, shard_r;
  std::vector<std::vector<float>> back(3, std::vector<float>(static_cast<size_t>(P)));
  lz::checkpoint::shard_meta meta;
  meta.run_id = "bench";
  meta.flat_total = P;
  meta.range = {0, P};
  meta.model = "gpt2 124M";
  for (int round = 0; round < 5; round++) {
    const std::string plain = dir + "/plain.bin", shard = dir + "/shard.lzs";
    plain_w.push_back(plain_write(plain, state));
    drop_cache(plain);
    plain_r.push_back(plain_read(plain, back));
    fs::remove(plain);

    meta.step = round;
    auto t0 = clock_type::now();
    lz::checkpoint::write_shard(shard, meta,
                                {{"params", state[0].data(), P}, {"adam_m", state[1].data(), P},
                                 {"adam_v", state[2].data(), P}});
    shard_w.push_back(seconds_since(t0));
    drop_cache(shard);
    t0 = clock_type::now();
    lz::checkpoint::shard_set set({shard});
    set.read("params", {0, P}, back[0].data());
    set.read("adam_m", {0, P}, back[1].data());
    set.read("adam_v", {0, P}, back[2].data());
    shard_r.push_back(seconds_since(t0));
    for (int t = 0; t < 3; t++) {
      if (std::memcmp(back[t].data(), state[t].data(), static_cast<size_t>(P) * 4) != 0) {
        std::fprintf(stderr, "checkpoint_bench: tensor %d read back differs\n", t);
        return 1;
      }
    }
    fs::remove(shard);
  }
  const double pw = mib / median(plain_w), pr = mib / median(plain_r);
  const double sw = mib / median(shard_w), sr = mib / median(shard_r);
  std::printf("124M training state: %.0f MiB (params + AdamW m, v)\n\n", mib);
  std::printf("%-28s %12s %12s %8s\n", "operation", "MiB/s", "plain MiB/s", "ratio");
  std::printf("%-28s %12.0f %12.0f %8.2f\n", "save (write_shard, fsync)", sw, pw, sw / pw);
  std::printf("%-28s %12.0f %12.0f %8.2f\n", "load (shard_set, verified)", sr, pr, sr / pr);
  print_json(json, lz::config::json_object().add("name", "save").add("mib_per_s", sw)
                       .add("baseline_mib_per_s", pw).add("ratio", sw / pw).add("bytes", bytes));
  print_json(json, lz::config::json_object().add("name", "load").add("mib_per_s", sr)
                       .add("baseline_mib_per_s", pr).add("ratio", sr / pr).add("bytes", bytes));
  std::fflush(stdout);
  state.clear();
  back.clear();

  // 1b. the catalog's part of a save: recording it in flight, then the commit (each a synced
  // RocksDB write flushed into table files), against one small file written durably (write,
  // fsync, rename, directory fsync) in the same run
  {
    auto cat = lz::checkpoint::catalog::create(dir + "/catalog-bench", "bench");
    std::vector<double> catalog_ms, file_ms;
    const std::string small(4096, 'x');
    for (int i = 0; i < 30; i++) {
      lz::checkpoint::checkpoint_record r;
      r.step = i;
      r.dir = lz::checkpoint::checkpoint_dir_name(i);
      r.shards.push_back({0, r.dir + "/shard.lzs", 4096, 1, {0, P}});
      auto t0 = clock_type::now();
      cat->begin_save(i, r.dir);
      cat->commit(r);
      catalog_ms.push_back(seconds_since(t0) * 1e3);
      t0 = clock_type::now();
      lz::checkpoint::write_file_durably(dir + "/small.bin", {{small.data(), small.size()}});
      file_ms.push_back(seconds_since(t0) * 1e3);
    }
    const double c = median(catalog_ms), f = median(file_ms);
    std::printf("%-28s %9.2f ms %9.2f ms %8.2f   (catalog begin_save + commit vs a durable "
                "4 KiB file)\n", "catalog commit", c, f, c / f);
    print_json(json, lz::config::json_object().add("name", "catalog_commit").add("ms", c)
                         .add("baseline_ms", f).add("ratio", c / f));
  }
  if (skip_stall) return 0;

  // 2. the stall an asynchronous save costs a 124M training step (B4 T64, 2 threads), on
  // the rank session `lazarus run` drives, with its checkpointer and a committer
  lz::bench::write_random_tokens(dir + "/tokens.bin", 64 * 4 * 40 + 1, cfg.vocab_size, 7);
  const lz::engine::token_dataset data({dir + "/tokens.bin"}, cfg.vocab_size);
  lz::config::run_spec spec = lz::bench::spec_for_model(cfg, 4, 64, 1, 100);
  spec.run.seed = 3;
  spec.optimizer.lr = 1e-4;
  spec.optimizer.warmup_steps = 0;
  spec.parallel.threads_per_rank = 2;
  const auto log = lz::bench::null_logger();
  lz::engine::inproc_world world(1, 0, std::chrono::minutes(10));
  const auto comm = world.connect(0);
  auto cat = lz::checkpoint::catalog::create(dir + "/state", "bench");
  lz::checkpoint::committer committer(*cat, {dir + "/state/checkpoints", {2, 0}, false}, log);
  lz::actors::rank_session session(spec, *comm, data, log);  // after its committer
  session.backend().use_in_this_thread();
  session.init_weights();
  session.attach_checkpointer(committer, {.async = true}, "bench", 0);
  // Baseline: the median of 6 steps with no save in flight. Then, for each of the two ways
  // a rank session can take a snapshot, one save: "fused" (the next AdamW update writes what
  // it reads into the snapshot buffers; what lazarus run does between steps) and "copy" (a
  // background copy overlapping forward and backward, waited for before the update; what a
  // final or stop-time save does). Steps go on until the save has committed. Stall: the
  // time the steps spent blocked (in the checkpointer, and the snapshot step's extra time).
  // Cost: all extra step time while the save was written (on these 2 cores the writer's CPU
  // time comes out of training), in steps.
  int s = 0;
  auto timed_step = [&] {
    const auto t0 = clock_type::now();
    session.step(s++);
    return seconds_since(t0) * 1e3;
  };
  std::vector<double> base;
  for (int i = 0; i < 8; i++) {
    const double ms = timed_step();
    if (i >= 2) base.push_back(ms);
  }
  struct mode_result {
    std::vector<double> snapshot_step_ms, blocked_ms, save_ms, cost_ms;
    int64_t committed = 0;
  };
  mode_result results[2];
  const char* modes[2] = {"fused", "copy"};
  const int cycles = 3;
  for (int cycle = 0; cycle < cycles; cycle++) {
    for (int mi = 0; mi < 2; mi++) {
      const bool fused = mi == 0;
      mode_result& r = results[mi];
      const auto before = session.checkpoint_stats();
      const auto committed_before = committer.stats().committed;
      const auto t_save = clock_type::now();
      session.save_after(s, !fused);
      session.step(s++);
      r.snapshot_step_ms.push_back(seconds_since(t_save) * 1e3);
      double total_ms = r.snapshot_step_ms.back();
      int steps_during = 1;
      for (int guard = 0; guard < 40 && committer.stats().committed == committed_before;
           guard++) {
        total_ms += timed_step();
        steps_during++;
      }
      session.wait_checkpoint_idle();
      r.save_ms.push_back(seconds_since(t_save) * 1e3);
      const auto st = session.checkpoint_stats();
      r.blocked_ms.push_back(st.blocked_ms - before.blocked_ms);
      r.committed += committer.stats().committed - committed_before;
      r.cost_ms.push_back(total_ms - steps_during * median(base));
      for (int i = 0; i < 2; i++) base.push_back(timed_step());  // clean steps between saves
    }
  }
  const double step_ms = median(base);
  std::printf("\n124M training step (B4 T64, 2 threads), no save in flight: %.0f ms (median of %zu)\n",
              step_ms, base.size());
  std::printf("%-6s %14s %11s %12s %10s %16s\n", "mode", "snapshot step", "stall", "stall/step",
              "save ms", "background/steps");
  for (int mi = 0; mi < 2; mi++) {
    const mode_result& r = results[mi];
    const double snap = median(r.snapshot_step_ms);
    const double stall = std::max(0.0, snap - step_ms);
    const double cost = median(r.cost_ms);
    std::printf("%-6s %11.0f ms %8.1f ms %12.3f %10.0f %16.2f\n", modes[mi], snap, stall,
                stall / step_ms, median(r.save_ms), cost / step_ms);
    print_json(json, lz::config::json_object().add("name", std::string("async_stall_") + modes[mi])
                         .add("step_ms", step_ms).add("snapshot_step_ms", snap)
                         .add("stall_ms", stall).add("stall_fraction", stall / step_ms)
                         .add("blocked_ms", median(r.blocked_ms)).add("save_ms", median(r.save_ms))
                         .add("background_cost_steps", cost / step_ms)
                         .add("saves", int64_t{cycles}).add("committed", r.committed));
  }
  session.detach_checkpointer();
  fs::remove_all(dir);
  return 0;
}
