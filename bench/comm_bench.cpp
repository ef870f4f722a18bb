// comm_bench: the communication of one training step for a GPT-2 124M gradient, over Gloo
// on loopback, against Gloo's own all-reduce of the same bytes and a plain TCP copy.
//
//   comm_bench [--json] [--ranks N]... [--floats N] [--rounds N]
//
// Ranks are threads of this process, each with its own Gloo context over TCP on 127.0.0.1.
// "exact" is what a step with the exact reduction moves when every rank holds one slot
// subtree: an all_to_all_v that sends each parameter range's owner its slice of the
// gradient, then an all_gather_v of the updated parameter ranges. "fast" is an all-reduce of
// the whole gradient (what reduction = "fast" does) followed by the same gather. The
// baseline is a plain TCP copy of the gradient's bytes between two threads.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.hpp"
#include "config/json_writer.hpp"
#include "engine/gloo_communicator.hpp"
#include "engine/train_step.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using lz::bench::median;

// Seconds to copy `bytes` from one thread to another over a loopback TCP connection.
double tcp_copy_seconds(size_t bytes) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("comm_bench: socket");
    std::exit(1);
  }
  std::vector<char> out(bytes, 'x'), in(bytes);
  std::thread receiver([&] {
    const int fd = ::accept(listener, nullptr, nullptr);
    size_t got = 0;
    while (got < bytes) {
      const ssize_t n = ::recv(fd, in.data() + got, bytes - got, 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const auto t0 = clock_type::now();
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) std::exit(1);
  size_t sent = 0;
  while (sent < bytes) {
    const ssize_t n = ::send(fd, out.data() + sent, bytes - sent, 0);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::close(fd);
  receiver.join();
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  ::close(listener);
  return s;
}

struct timings {
  double exact_ms = 0.0;
  double fast_ms = 0.0;
};

timings run_ranks(int world, int64_t floats, int rounds) {
  lz::engine::memory_store store;
  std::vector<std::vector<double>> exact(static_cast<size_t>(world)), fast(exact);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; r++) {
    threads.emplace_back([&, r] {
      auto comm = lz::engine::connect_gloo(store, r, world, 0, {.timeout = std::chrono::minutes(5)});
      std::vector<int64_t> counts;
      for (int d = 0; d < world; d++) counts.push_back(lz::engine::owner_range(floats, world, d).size());
      const int64_t mine = counts[static_cast<size_t>(r)];
      std::vector<float> grad(static_cast<size_t>(floats), 1.0f + static_cast<float>(r));
      std::vector<float> params(static_cast<size_t>(floats), 0.5f);
      std::vector<float> recv(static_cast<size_t>(mine * world));
      const std::vector<int64_t> recv_counts(static_cast<size_t>(world), mine);
      for (int round = 0; round < rounds + 1; round++) {  // the first round warms up
        comm->barrier();
        auto t0 = clock_type::now();
        comm->all_to_all_v(grad.data(), counts, recv.data(), recv_counts);
        comm->all_gather_v(params.data(), counts);
        const double e = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        comm->barrier();
        t0 = clock_type::now();
        comm->all_reduce_sum(grad.data(), floats);
        comm->all_gather_v(params.data(), counts);
        const double f = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        if (round > 0) {
          exact[static_cast<size_t>(r)].push_back(e);
          fast[static_cast<size_t>(r)].push_back(f);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  timings out;
  std::vector<double> e, f;  // the slowest rank of each round
  for (int round = 0; round < rounds; round++) {
    double me = 0, mf = 0;
    for (int r = 0; r < world; r++) {
      me = std::max(me, exact[static_cast<size_t>(r)][static_cast<size_t>(round)]);
      mf = std::max(mf, fast[static_cast<size_t>(r)][static_cast<size_t>(round)]);
    }
    e.push_back(me);
    f.push_back(mf);
  }
  out.exact_ms = median(e);
  out.fast_ms = median(f);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int64_t floats = 124'475'904;  // GPT-2 124M with a padded vocabulary
  int rounds = 5;
  std::vector<int> worlds;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--ranks" && i + 1 < argc) worlds.push_back(std::atoi(argv[++i]));
    else if (a == "--floats" && i + 1 < argc) floats = std::atoll(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: comm_bench [--json] [--ranks N]... [--floats N] [--rounds N]\n");
      return 2;
    }
  }
  if (worlds.empty()) worlds = {2, 4};
  const double mib = static_cast<double>(floats) * 4 / (1 << 20);
  std::vector<double> copies;
  for (int i = 0; i < 3; i++) copies.push_back(tcp_copy_seconds(static_cast<size_t>(floats) * 4));
  const double copy_ms = median(copies) * 1e3;
  std::printf("gradient: %lld floats (%.0f MiB); plain TCP copy on loopback: %.0f ms (%.0f MiB/s)\n\n",
              static_cast<long long>(floats), mib, copy_ms, mib / (copy_ms / 1e3));
  std::printf("%5s %12s %12s %14s %16s\n", "ranks", "exact ms", "fast ms", "exact/fast",
              "exact/TCP copy");
  for (int world : worlds) {
    const timings t = run_ranks(world, floats, rounds);
    std::printf("%5d %12.0f %12.0f %14.2f %16.2f\n", world, t.exact_ms, t.fast_ms,
                t.exact_ms / t.fast_ms, t.exact_ms / copy_ms);
    if (json) {
      std::printf("%s\n", lz::config::json_object()
                              .add("name", "step_communication").add("ranks", int64_t{world})
                              .add("floats", floats).add("exact_ms", t.exact_ms)
                              .add("fast_ms", t.fast_ms).add("tcp_copy_ms", copy_ms)
                              .add("exact_over_fast", t.exact_ms / t.fast_ms)
                              .add("exact_over_copy", t.exact_ms / copy_ms)
                              .str().c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
