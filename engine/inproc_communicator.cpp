// inproc_communicator.cpp: ranks as threads (see inproc_communicator.hpp).
#include "engine/inproc_communicator.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <vector>

namespace lz::engine {

// What each rank posted for the exchange in progress.
struct posted {
  const void* data = nullptr;
  const std::vector<int64_t>* counts = nullptr;
};

struct inproc_world::state {
  int world = 1;
  int64_t generation = 0;
  std::chrono::milliseconds timeout{0};

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<posted> posts;
  std::vector<bool> arrived;      // posted in the current round (phase 1)
  int arrivals = 0, departures = 0;
  uint64_t round = 0;             // completed phase-1 rounds
  uint64_t finished = 0;          // completed phase-2 rounds
  bool aborted = false;
  std::string why;                // what failed the world

  [[noreturn]] void fail(std::unique_lock<std::mutex>& lock, const std::string& message) {
    if (!aborted) {
      aborted = true;
      why = message;
    }
    lock.unlock();
    changed.notify_all();
    LZ_THROW(comm_error, "{}", message);
  }

  // Waits until `done()` or failure; the caller holds `lock`.
  void wait(std::unique_lock<std::mutex>& lock, int rank, const char* op,
            const std::function<bool()>& done, const std::function<std::string()>& missing) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (aborted) {
        lock.unlock();
        LZ_THROW(comm_error, "g{} rank {}: {} failed: {}", generation, rank, op, why);
      }
      if (changed.wait_until(lock, deadline) == std::cv_status::timeout && !done() && !aborted) {
        fail(lock, fmt::format("g{} rank {}: {} timed out after {} ms waiting for {}",
                               generation, rank, op, timeout.count(), missing()));
      }
    }
  }

  // One collective: post `mine`, copy from the others with `copy` once all have posted,
  // then `after` once all have copied.
  void exchange(int rank, const char* op, posted mine, const std::function<void()>& copy,
                const std::function<void()>& after) {
    std::unique_lock lock(mutex);
    if (aborted) {
      lock.unlock();
      LZ_THROW(comm_error, "g{} rank {}: {} failed: {}", generation, rank, op, why);
    }
    const uint64_t my_round = round;
    posts[static_cast<size_t>(rank)] = mine;
    arrived[static_cast<size_t>(rank)] = true;
    if (++arrivals == world) {
      arrivals = 0;
      std::fill(arrived.begin(), arrived.end(), false);
      round++;
      changed.notify_all();
    }
    wait(lock, rank, op, [&] { return round != my_round; }, [&] {
      std::string ranks;
      for (int r = 0; r < world; r++) {
        if (!arrived[static_cast<size_t>(r)]) ranks += (ranks.empty() ? "rank " : ", ") + std::to_string(r);
      }
      return ranks;
    });
    lock.unlock();
    copy();
    lock.lock();
    const uint64_t my_finish = finished;
    if (++departures == world) {
      departures = 0;
      finished++;
      changed.notify_all();
    }
    wait(lock, rank, op, [&] { return finished != my_finish; },
         [] { return std::string("the other ranks to finish copying"); });
    lock.unlock();
    if (after) after();
  }
};

namespace {

class inproc_communicator final : public communicator {
public:
  inproc_communicator(std::shared_ptr<inproc_world::state> s, int rank)
    : s_(std::move(s)), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return s_->world; }
  int64_t generation() const override { return s_->generation; }
  const char* name() const override { return "inproc"; }

  void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                    const std::vector<int64_t>& recv_counts) override {
    check_counts(send_counts, "all_to_all_v send");
    check_counts(recv_counts, "all_to_all_v recv");
    const std::vector<int64_t> recv_at = prefix_offsets(recv_counts);
    s_->exchange(rank_, "all_to_all_v", {send, &send_counts}, [&] {
      for (int src = 0; src < s_->world; src++) {
        const posted& p = s_->posts[static_cast<size_t>(src)];
        const std::vector<int64_t>& counts = *p.counts;
        const int64_t n = counts[static_cast<size_t>(rank_)];
        LZ_CHECK(n == recv_counts[static_cast<size_t>(src)],
                 "all_to_all_v: rank {} sends {} values to rank {}, which expects {}", src, n,
                 rank_, recv_counts[static_cast<size_t>(src)]);
        if (n == 0) continue;  // nothing to copy (the buffers may be null)
        const int64_t from = prefix_offsets(counts)[static_cast<size_t>(rank_)];
        std::memcpy(recv + recv_at[static_cast<size_t>(src)],
                    static_cast<const float*>(p.data) + from, static_cast<size_t>(n) * sizeof(float));
      }
    }, {});
  }

  void all_gather_v(float* buffer, const std::vector<int64_t>& counts) override {
    gather(buffer, counts);
  }
  void all_gather_v(double* buffer, const std::vector<int64_t>& counts) override {
    gather(buffer, counts);
  }

  void all_reduce_sum(float* data, int64_t count) override {
    std::vector<float> sum(static_cast<size_t>(count), 0.0f);
    s_->exchange(rank_, "all_reduce_sum", {data, nullptr}, [&] {
      for (int src = 0; src < s_->world; src++) {
        const auto* p = static_cast<const float*>(s_->posts[static_cast<size_t>(src)].data);
        for (int64_t i = 0; i < count; i++) sum[static_cast<size_t>(i)] += p[i];
      }
    }, [&] { std::memcpy(data, sum.data(), sum.size() * sizeof(float)); });
  }

  void barrier() override { s_->exchange(rank_, "barrier", {}, [] {}, {}); }

  void exchange(const std::vector<transfer>& sends, const std::vector<transfer>& recvs) override {
    s_->exchange(rank_, "exchange", {&sends, nullptr}, [&] {
      for (const transfer& in : recvs) {
        if (in.bytes == 0) continue;
        LZ_CHECK(in.peer >= 0 && in.peer < s_->world, "exchange: peer {} of {}", in.peer, s_->world);
        const auto& theirs = *static_cast<const std::vector<transfer>*>(
            s_->posts[static_cast<size_t>(in.peer)].data);
        const auto out = std::find_if(theirs.begin(), theirs.end(), [&](const transfer& t) {
          return t.peer == rank_ && t.tag == in.tag;
        });
        LZ_CHECK(out != theirs.end() && out->bytes == in.bytes,
                 "exchange: rank {} expects {} bytes with tag {} from rank {}, which sends {}",
                 rank_, in.bytes, in.tag, in.peer, out == theirs.end() ? int64_t{-1} : out->bytes);
        std::memcpy(in.data, out->data, static_cast<size_t>(in.bytes));
      }
    }, {});
  }

  void abort() override {
    std::unique_lock lock(s_->mutex);
    if (!s_->aborted) {
      s_->aborted = true;
      s_->why = fmt::format("the world was aborted by rank {}", rank_);
    }
    lock.unlock();
    s_->changed.notify_all();
  }

  bool errored() const override {
    std::lock_guard lock(s_->mutex);
    return s_->aborted;
  }

private:
  void check_counts(const std::vector<int64_t>& counts, const char* what) const {
    LZ_CHECK(counts.size() == static_cast<size_t>(s_->world), "{}: {} counts for {} ranks",
             what, counts.size(), s_->world);
  }

  template <class T>
  void gather(T* buffer, const std::vector<int64_t>& counts) {
    check_counts(counts, "all_gather_v");
    const std::vector<int64_t> at = prefix_offsets(counts);
    s_->exchange(rank_, "all_gather_v", {buffer, &counts}, [&] {
      for (int src = 0; src < s_->world; src++) {
        const auto i = static_cast<size_t>(src);
        if (src == rank_ || counts[i] == 0) continue;
        std::memcpy(buffer + at[i], static_cast<const T*>(s_->posts[i].data) + at[i],
                    static_cast<size_t>(counts[i]) * sizeof(T));
      }
    }, {});
  }

  std::shared_ptr<inproc_world::state> s_;
  int rank_;
};

}  // namespace

inproc_world::inproc_world(int world_size, int64_t generation, std::chrono::milliseconds timeout)
  : state_(std::make_shared<state>()) {
  LZ_CHECK(world_size >= 1, "world size {}", world_size);
  state_->world = world_size;
  state_->generation = generation;
  state_->timeout = timeout;
  state_->posts.resize(static_cast<size_t>(world_size));
  state_->arrived.assign(static_cast<size_t>(world_size), false);
}

inproc_world::~inproc_world() = default;

std::unique_ptr<communicator> inproc_world::connect(int rank) {
  LZ_CHECK(rank >= 0 && rank < state_->world, "rank {} of {}", rank, state_->world);
  return std::make_unique<inproc_communicator>(state_, rank);
}

void inproc_world::abort() {
  std::unique_lock lock(state_->mutex);
  if (!state_->aborted) {
    state_->aborted = true;
    state_->why = fmt::format("generation {} was aborted", state_->generation);
  }
  lock.unlock();
  state_->changed.notify_all();
}

}  // namespace lz::engine
