// recovery_bench: what a fault costs a run on this machine.
//
//   recovery_bench [--json] [--data DIR] [--faults N] [--replica-every N] [--lazarus PATH]
//
// A coordinator and two node agents of one slot each (started here, as a cluster starts
// them) train the embedded default's model at 2 ranks of one thread, a checkpoint every 5
// steps, in-memory copies every --replica-every steps (default 1; 0: every recovery reads
// the newest checkpoint). The benchmark strikes N times (default 10) per kind, each once the world has
// finished 7 steps since the last recovery (so that the hang timeout has its history):
//
//   worker kill   SIGKILL to the worker of rank 1
//   node loss     SIGKILL to the node agent of rank 1 (its worker dies with it); a new
//                 node agent is started at once as the replacement
//   hang          SIGSTOP to the worker of rank 1; found by the hang timeout
//
// Figures per kind: the time from the strike to the first finished step of the next world
// (metrics.jsonl's unix_ms against this process's clock), median and max; for hangs also
// the time to the detection (the coordinator's "recovering" line) against the limit 2 x p99
// step time + 1 s (step time as the coordinator sees it: between finished steps); the steps
// trained again per fault and how many recoveries restored from memory (the coordinator's
// "recovered" line).
// The baseline measured in the same run is the median step time of the steps between
// faults: recovery time is also stated in steps.
// DIR holds the corpus shards (train_*.bin, val_*.bin: scripts/quickstart.sh makes them in
// data/kjv).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_process.hpp"
#include "bench/bench_support.hpp"
#include "config/json_writer.hpp"

namespace {

using lz::bench::child;
using lz::bench::json_number;
using lz::bench::median;
using lz::bench::read_file;

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(const std::string& why, const std::string& output = "") {
  std::fprintf(stderr, "recovery_bench: %s\n%s\n", why.c_str(), output.c_str());
  std::exit(1);
}

struct step_line {
  int64_t step = 0, generation = 0;
  double unix_ms = 0, step_ms = 0;
};

std::vector<step_line> steps_of(const std::string& metrics_path) {
  std::vector<step_line> out;
  std::istringstream in(read_file(metrics_path));
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"step\":") == std::string::npos) continue;
    out.push_back({static_cast<int64_t>(json_number(line, "step")),
                   static_cast<int64_t>(json_number(line, "generation")),
                   json_number(line, "unix_ms"), json_number(line, "step_ms")});
  }
  return out;
}

// From the first "recovered in T ms from step S (SOURCE; N step(s) trained again)" line of
// the coordinator after offset `from`: N (-1 when there is none), and whether SOURCE is memory.
std::pair<double, bool> steps_trained_again(const std::string& log, size_t from) {
  const size_t at = log.find("recovered in ", from);
  if (at == std::string::npos) return {-1, false};
  const size_t open = log.find(" (", at), semi = log.find("; ", at);
  if (open == std::string::npos || semi == std::string::npos) return {-1, false};
  return {std::atof(log.c_str() + semi + 2), log.compare(open + 2, 6, "memory") == 0};
}

struct cluster {
  std::string exe, dir;
  child coordinator;
  std::string address;
  std::vector<child> nodes;
  int next_node = 0;

  void start_node() {
    nodes.push_back(lz::bench::spawn_lazarus(
        exe, {"node", "--join", address, "--slots", "1", "--name", fmt::format("n{}", next_node++)}));
  }
  void read_all() {
    coordinator.read_some(0);
    for (child& n : nodes) n.read_some(0);
  }
  // Waits until the world of a generation above `after` has finished `count` steps; its
  // step lines.
  std::vector<step_line> wait_steps(int64_t after, size_t count) {
    const auto deadline = lz::bench::clock_type::now() + std::chrono::seconds(120);
    for (;;) {
      read_all();
      std::vector<step_line> mine;
      for (const step_line& s : steps_of(dir + "/metrics.jsonl")) {
        if (s.generation > after) mine.push_back(s);
      }
      if (mine.size() >= count) return mine;
      if (lz::bench::clock_type::now() > deadline) die("no progress within 120 s", coordinator.text);
      ::usleep(10000);
    }
  }
  int64_t generation() { return wait_steps(-1, 1).back().generation; }
  // The pid of the worker of `rank` in generation `g`, and the index of its node.
  std::pair<pid_t, size_t> worker(int rank, int64_t g) {
    const std::string key = fmt::format("g{}: started rank {} of ", g, rank);
    for (size_t i = 0; i < nodes.size(); i++) {
      const size_t at = nodes[i].text.rfind(key);
      if (at == std::string::npos) continue;
      const size_t pid_at = nodes[i].text.find("(pid ", at);
      return {static_cast<pid_t>(std::atol(nodes[i].text.c_str() + pid_at + 5)), i};
    }
    // a survivor of the last world: "gG: pid P (rank R of generation H) carries on as rank N"
    const std::string carried = fmt::format(") carries on as rank {}\n", rank);
    for (size_t i = 0; i < nodes.size(); i++) {
      for (size_t at = nodes[i].text.rfind(carried); at != std::string::npos && at > 0;
           at = nodes[i].text.rfind(carried, at - 1)) {
        const size_t line = nodes[i].text.rfind('\n', at);
        const std::string head = fmt::format("g{}: pid ", g);
        const size_t h = nodes[i].text.find(head, line == std::string::npos ? 0 : line);
        if (h == std::string::npos || h > at) continue;
        return {static_cast<pid_t>(std::atol(nodes[i].text.c_str() + h + head.size())), i};
      }
    }
    die(fmt::format("no worker of rank {} in generation {}", rank, g), coordinator.text);
  }
};

struct fault_figures {
  std::vector<double> recover_ms, detect_ms, limit_ms, steps_lost, step_ms;
  int from_memory = 0;
};

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int faults = 10;
  int replica_every = 1;
  std::string data = "data/kjv";
  std::string exe = (std::filesystem::path(argv[0]).parent_path().parent_path() / "lazarus").string();
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--data" && i + 1 < argc) data = argv[++i];
    else if (a == "--faults" && i + 1 < argc) faults = std::max(1, std::atoi(argv[++i]));
    else if (a == "--lazarus" && i + 1 < argc) exe = argv[++i];
    else if (a == "--replica-every" && i + 1 < argc) replica_every = std::max(0, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: recovery_bench [--json] [--data DIR] [--faults N] [--replica-every N] [--lazarus PATH]\n");
      return 2;
    }
  }
  data = std::filesystem::absolute(data).string();
  cluster c;
  c.exe = exe;
  c.dir = (std::filesystem::temp_directory_path() / "lazarus-recovery-bench").string();
  std::filesystem::remove_all(c.dir);
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) die("pipe");
  std::vector<std::string> args{"coordinator", "--no-progress", "--state-dir", c.dir, "--listen",
                                "127.0.0.1:0", "--ready-fd", std::to_string(ready[1])};
  for (const std::string& kv :
       {"data.train_shards=" + data + "/train_*.bin", "data.val_shards=" + data + "/val_*.bin",
        std::string("run.steps=1000000"), std::string("parallel.ranks=2"),
        std::string("parallel.nodes=2"), std::string("parallel.threads_per_rank=1"),
        std::string("run.val_every_steps=0"), std::string("run.sample_tokens=0"),
        std::string("checkpoint.every_steps=5"), std::string("checkpoint.keep_last=2"),
        fmt::format("fault_tolerance.replica_every_steps={}", replica_every)}) {
    args.insert(args.end(), {"--set", kv});
  }
  c.coordinator = lz::bench::spawn_lazarus(exe, args, ready[1]);
  ::close(ready[1]);
  char ch = 0;
  while (::read(ready[0], &ch, 1) == 1 && ch != '\n') c.address += ch;
  ::close(ready[0]);
  if (c.address.empty()) die("the coordinator did not start", (c.coordinator.wait(), c.coordinator.text));
  c.start_node();
  c.start_node();

  const char* kinds[] = {"worker kill", "node loss", "hang"};
  fault_figures figures[3];
  std::vector<double> between_ms;  // step times between faults: the baseline
  for (int kind = 0; kind < 3; kind++) {
    for (int i = 0; i < faults; i++) {
      const int64_t g = c.generation();
      for (const step_line& s : c.wait_steps(g - 1, 7)) between_ms.push_back(s.step_ms);
      const auto [pid, node] = c.worker(1, g);
      const size_t log_from = c.coordinator.text.size();
      const double t0 = static_cast<double>(unix_ms());
      const auto t0_clock = lz::bench::clock_type::now();
      if (kind == 0) ::kill(pid, SIGKILL);
      if (kind == 1) {
        ::kill(c.nodes[node].pid, SIGKILL);
        c.start_node();
      }
      if (kind == 2) ::kill(pid, SIGSTOP);
      fault_figures& f = figures[kind];
      if (kind == 2) {
        if (!c.coordinator.read_until("recovering: ", std::chrono::seconds(120), log_from)) {
          die("the hang was not detected", c.coordinator.text);
        }
        f.detect_ms.push_back(std::chrono::duration<double, std::milli>(lz::bench::clock_type::now() - t0_clock).count());
        // the coordinator's own step times: between finished steps of this world
        std::vector<double> recent;
        const std::vector<step_line> done = c.wait_steps(g - 1, 1);
        for (size_t k = 1; k < done.size(); k++) {
          if (done[k].generation == g && done[k - 1].generation == g) {
            recent.push_back(done[k].unix_ms - done[k - 1].unix_ms);
          }
        }
        std::sort(recent.begin(), recent.end());
        const double p99 = recent.empty() ? 0 : recent[std::min(recent.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(recent.size())))];
        f.limit_ms.push_back(2 * p99 + 1000);
      }
      const std::vector<step_line> next = c.wait_steps(g, 1);
      f.recover_ms.push_back(next.front().unix_ms - t0);
      if (!c.coordinator.read_until(" step(s) trained again", std::chrono::seconds(30), log_from)) {
        die("no recovered line", c.coordinator.text);
      }
      const auto [lost, memory] = steps_trained_again(c.coordinator.text, log_from);
      f.steps_lost.push_back(lost);
      f.from_memory += memory ? 1 : 0;
    }
  }
  ::kill(c.coordinator.pid, SIGINT);
  const int code = c.coordinator.wait();
  for (child& n : c.nodes) n.wait();
  if (code != 128 + SIGINT) die(fmt::format("the coordinator exited {} after SIGINT", code), c.coordinator.text);

  const double step_ms = median(between_ms);
  std::printf("recovery_bench: 2 ranks on 2 node agents, %d fault(s) per kind, in-memory copies "
              "every %d step(s); median step %.1f ms\n\n", faults, replica_every, step_ms);
  std::printf("%-12s %12s %12s %14s %12s %14s %12s %8s\n", "fault", "median ms", "max ms",
              "median steps", "steps lost", "detect ms", "limit ms", "memory");
  for (int kind = 0; kind < 3; kind++) {
    const fault_figures& f = figures[kind];
    const double med = median(f.recover_ms);
    const double mx = *std::max_element(f.recover_ms.begin(), f.recover_ms.end());
    double lost = 0, lost_max = 0;
    for (double s : f.steps_lost) {
      lost += s;
      lost_max = std::max(lost_max, s);
    }
    lost /= static_cast<double>(f.steps_lost.size());
    const double detect = f.detect_ms.empty() ? -1 : median(f.detect_ms);
    const double limit = f.limit_ms.empty() ? -1 : median(f.limit_ms);
    std::printf("%-12s %12.0f %12.0f %14.1f %5.1f (max %1.0f) %14.0f %12.0f %5d/%-2d\n", kinds[kind],
                med, mx, med / step_ms, lost, lost_max, detect, limit, f.from_memory, faults);
    if (json) {
      lz::config::json_object o;
      o.add("name", "recovery").add("fault", kinds[kind]).add("faults", int64_t{faults})
          .add("median_ms", med).add("max_ms", mx).add("median_step_ms", step_ms)
          .add("recovery_in_steps", med / step_ms).add("mean_steps_lost", lost)
          .add("max_steps_lost", lost_max).add("replica_every_steps", int64_t{replica_every})
          .add("restored_from_memory", int64_t{f.from_memory});
      if (detect >= 0) o.add("median_detect_ms", detect).add("median_detect_limit_ms", limit);
      std::printf("%s\n", o.str().c_str());
    }
  }
  return 0;
}
