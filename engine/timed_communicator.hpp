// timed_communicator.hpp: a communicator that adds up the time spent in its collectives,
// so a step can say how much of it was communication (metrics: comm_ms).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "engine/communicator.hpp"

namespace lz::engine {

class timed_communicator final : public communicator {
public:
  explicit timed_communicator(std::unique_ptr<communicator> inner) : inner_(std::move(inner)) {}

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  int64_t generation() const override { return inner_->generation(); }
  const char* name() const override { return inner_->name(); }

  void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                    const std::vector<int64_t>& recv_counts) override {
    timed([&] { inner_->all_to_all_v(send, send_counts, recv, recv_counts); });
  }
  void all_gather_v(float* buffer, const std::vector<int64_t>& counts) override {
    timed([&] { inner_->all_gather_v(buffer, counts); });
  }
  void all_gather_v(double* buffer, const std::vector<int64_t>& counts) override {
    timed([&] { inner_->all_gather_v(buffer, counts); });
  }
  void all_reduce_sum(float* data, int64_t count) override {
    timed([&] { inner_->all_reduce_sum(data, count); });
  }
  void barrier() override {
    timed([&] { inner_->barrier(); });
  }
  void exchange(const std::vector<transfer>& sends, const std::vector<transfer>& recvs) override {
    timed([&] { inner_->exchange(sends, recvs); });
  }
  void abort() override { inner_->abort(); }
  bool errored() const override { return inner_->errored(); }

  // Total milliseconds spent in collectives so far (read by the thread that calls them).
  double busy_ms() const { return busy_ms_; }
  // Whether a collective is under way now (readable from any thread).
  bool in_collective() const { return in_collective_.load(std::memory_order_relaxed); }

private:
  template <class F>
  void timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    in_collective_.store(true, std::memory_order_relaxed);
    struct leave {
      std::atomic<bool>& flag;
      ~leave() { flag.store(false, std::memory_order_relaxed); }
    } on_exit{in_collective_};
    f();
    busy_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  std::unique_ptr<communicator> inner_;
  double busy_ms_ = 0.0;
  std::atomic<bool> in_collective_{false};
};

}  // namespace lz::engine
