// gloo_communicator.cpp: the communicator over Gloo (see gloo_communicator.hpp).
#include "engine/gloo_communicator.hpp"

#include <atomic>
#include <exception>
#include <vector>

#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/tcp/pair.h>
#include <gloo/transport/tcp/unbound_buffer.h>
#include <gloo/transport/unbound_buffer.h>

namespace lz::engine {

namespace {

// Gloo's store interface over ours, every key under the generation's prefix, every wait
// bounded (Gloo's base class would ignore the timeout).
class store_adapter final : public gloo::rendezvous::Store {
public:
  store_adapter(rendezvous_store& store, std::string prefix, std::chrono::milliseconds timeout)
    : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set(prefix_ + key, data);
  }
  std::vector<char> get(const std::string& key) override {
    return store_.get(prefix_ + key, timeout_);
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    for (const auto& k : keys) store_.get(prefix_ + k, timeout);
  }

private:
  rendezvous_store& store_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

// Protected members of a TCP pair, which a class derived from it may name (it is never
// instantiated): the call that fails every wait on the pair and closes it (Gloo's buffers
// make it when their wait times out), the pair's lock, the operation it is reading and
// those it is writing.
struct pair_access : gloo::transport::tcp::Pair {
  static auto fail() { return &pair_access::signalExceptionExternal; }
  static auto lock() { return &pair_access::m_; }
  static auto reading() { return &pair_access::rx_; }
  static auto writing() { return &pair_access::tx_; }
};

// A failing pair (a peer's connection lost, or the abort below) fails the waits of the
// operations still queued on it, but not the waits of the message it is reading or writing
// at that moment (those operations have left the queues): a peer that dies in the middle
// of a message would leave this rank waiting out the whole timeout. This ends those waits.
void wake_the_transfers_under_way(gloo::transport::tcp::Pair& pair) {
  using buffer_ref = gloo::NonOwningPtr<gloo::transport::tcp::UnboundBuffer>;
  std::lock_guard lock(pair.*pair_access::lock());
  if (const buffer_ref in((pair.*pair_access::reading()).ubuf); in) in->abortWaitRecv();
  for (const gloo::transport::tcp::Op& op : pair.*pair_access::writing()) {
    if (const buffer_ref out(op.ubuf); out) out->abortWaitSend();
  }
}

class gloo_communicator final : public communicator {
public:
  gloo_communicator(std::shared_ptr<gloo::rendezvous::Context> context, int64_t generation,
                    std::chrono::milliseconds timeout)
    : context_(std::move(context)), generation_(generation), timeout_(timeout) {}

  int rank() const override { return context_->rank; }
  int world_size() const override { return context_->size; }
  int64_t generation() const override { return generation_; }
  const char* name() const override { return "gloo"; }

  void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                    const std::vector<int64_t>& recv_counts) override {
    guard("all_to_all_v", [&] {
      float dummy = 0.0f;  // Gloo wants a buffer even when nothing is sent or received
      gloo::AlltoallvOptions opts(context_);
      opts.setInput(send != nullptr ? const_cast<float*>(send) : &dummy, send_counts);
      opts.setOutput(recv != nullptr ? recv : &dummy, recv_counts);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::alltoallv(opts);
    });
  }

  void all_gather_v(float* buffer, const std::vector<int64_t>& counts) override {
    gather(buffer, counts);
  }
  void all_gather_v(double* buffer, const std::vector<int64_t>& counts) override {
    gather(buffer, counts);
  }

  void all_reduce_sum(float* data, int64_t count) override {
    guard("all_reduce_sum", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, static_cast<size_t>(count));
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }

  void barrier() override {
    guard("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

  void exchange(const std::vector<transfer>& sends, const std::vector<transfer>& recvs) override {
    guard("exchange", [&] {
      // Every receive is posted before any send, so no order of the peers can deadlock.
      std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> in, out;
      for (const transfer& t : recvs) {
        if (t.bytes == 0) continue;
        in.push_back(context_->createUnboundBuffer(t.data, static_cast<size_t>(t.bytes)));
        in.back()->recv(t.peer, slot_of(t.tag));
      }
      for (const transfer& t : sends) {
        if (t.bytes == 0) continue;
        out.push_back(context_->createUnboundBuffer(t.data, static_cast<size_t>(t.bytes)));
        out.back()->send(t.peer, slot_of(t.tag));
      }
      // (Gloo's waits throw when they time out; they return false when an abort woke them.)
      for (auto& b : in) {
        if (!b->waitRecv(timeout_)) LZ_THROW(comm_error, "a receive was aborted");
      }
      for (auto& b : out) {
        if (!b->waitSend(timeout_)) LZ_THROW(comm_error, "a send was aborted");
      }
    });
  }

  // Fails every wait on this rank's connections, its own thread's included, and closes
  // them, so that its peers' waits fail too. (Context::closeConnections alone closes the
  // sockets without waking a wait in this rank: it would sit out its timeout. A pair that
  // has failed already, its peer gone, ignores the first call; the second still wakes the
  // message it was in the middle of.)
  void abort() override {
    errored_ = true;
    const std::string why =
        fmt::format("g{} rank {}: the communicator was aborted (the world is fenced)", generation_, rank());
    for (int peer = 0; peer < context_->size; peer++) {
      if (peer == context_->rank) continue;
      std::unique_ptr<gloo::transport::Pair>& pair = context_->getPair(peer);
      if (!pair) continue;
      if (auto* tcp = dynamic_cast<gloo::transport::tcp::Pair*>(pair.get())) {
        (tcp->*pair_access::fail())(why);
        wake_the_transfers_under_way(*tcp);
      }
      pair->close();
    }
  }
  bool errored() const override { return errored_; }

private:
  template <class T>
  void gather(T* buffer, const std::vector<int64_t>& counts) {
    guard("all_gather_v", [&] {
      const std::vector<int64_t> at = prefix_offsets(counts);
      const auto me = static_cast<size_t>(rank());
      std::vector<T> mine(buffer + at[me], buffer + at[me + 1]);  // Gloo's input may not alias
      T dummy{};
      std::vector<size_t> elements(counts.begin(), counts.end());
      gloo::AllgathervOptions opts(context_);
      opts.setInput(mine.empty() ? &dummy : mine.data(), mine.size());
      opts.setOutput(buffer, elements);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allgatherv(opts);
    });
  }

  uint32_t next_tag() { return tag_++; }
  // Point-to-point slots live above every collective's (Gloo's collectives put a prefix of
  // their own in the top byte of the slot; none uses 0x7f).
  static uint64_t slot_of(uint32_t tag) { return (uint64_t{0x7f} << 56) | tag; }

  template <class F>
  void guard(const char* op, F&& f) {
    if (errored_) {
      LZ_THROW(comm_error, "g{} rank {}: {}: the communicator failed earlier; the world must "
               "move to a new generation", generation_, rank(), op);
    }
    try {
      f();
    } catch (const std::exception& e) {  // gloo::IoException, gloo::EnforceNotMet, ours
      errored_ = true;
      LZ_THROW(comm_error, "g{} rank {} of {}: {} failed: {}", generation_, rank(), world_size(),
               op, e.what());
    }
    // Gloo's collectives do not look at what a woken wait returns: one that an abort cut
    // short may return as if it were complete.
    if (errored_) {
      LZ_THROW(comm_error, "g{} rank {} of {}: {} failed: the communicator was aborted while "
               "it ran (the world is fenced)", generation_, rank(), world_size(), op);
    }
  }

  std::shared_ptr<gloo::rendezvous::Context> context_;
  int64_t generation_;
  std::chrono::milliseconds timeout_;
  uint32_t tag_ = 1;
  std::atomic<bool> errored_{false};
};

}  // namespace

std::unique_ptr<communicator> connect_gloo(rendezvous_store& store, int rank, int world,
                                           int64_t generation, const gloo_options& options) {
  LZ_CHECK(world >= 1 && rank >= 0 && rank < world, "rank {} of {}", rank, world);
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, world);
    context->setTimeout(options.timeout);
    store_adapter adapter(store, fmt::format("g{}/", generation), options.timeout);
    context->connectFullMesh(adapter, device);
    return std::make_unique<gloo_communicator>(std::move(context), generation, options.timeout);
  } catch (const std::exception& e) {  // Gloo's exceptions, or the store's timeout
    LZ_THROW(comm_error, "g{} rank {} of {}: connecting over Gloo (TCP, {}) failed: {}",
             generation, rank, world, options.host, e.what());
  }
}

}  // namespace lz::engine
