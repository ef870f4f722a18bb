// communicator.hpp: the collectives a training step needs, behind one interface.
//
// A communicator is configured for one generation of a world: this rank, the world size
// and a rendezvous store. Every collective takes the generation's timeout and either
// completes on every rank or throws comm_error on every rank that was waiting, naming the
// generation, the operation and the peer when one is known. After an error (a dead or hung
// peer, abort()) the communicator is dead: the owner configures a new generation.
//
// Implementations: inproc_communicator (ranks as threads of one process, for tests and the
// one-process run) and gloo_communicator (Gloo over TCP; engine/gloo_communicator.hpp is the
// only file that includes Gloo).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/error.hpp"

namespace lz::engine {

// A collective that failed: a peer died, hung past the timeout, or the world was aborted.
class comm_error : public io_error {
public:
  using io_error::io_error;
};

class communicator {
public:
  virtual ~communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int64_t generation() const = 0;
  virtual const char* name() const = 0;  // "inproc", "gloo"

  // Rank r sends send_counts[d] floats to every rank d (from `send`, the pieces back to back
  // in rank order) and receives recv_counts[s] floats from every rank s (into `recv`, back to
  // back in rank order). Counts must agree: send_counts[d] on rank r == recv_counts[r] on d.
  virtual void all_to_all_v(const float* send, const std::vector<int64_t>& send_counts,
                            float* recv, const std::vector<int64_t>& recv_counts) = 0;

  // `buffer` holds sum(counts) values; this rank's counts[rank()] values are at offset
  // sum(counts[0..rank)); afterwards every rank's values are everywhere.
  virtual void all_gather_v(float* buffer, const std::vector<int64_t>& counts) = 0;
  virtual void all_gather_v(double* buffer, const std::vector<int64_t>& counts) = 0;

  // `data` (count floats) is summed over the ranks into every rank's `data`; the order of
  // the additions is the implementation's (reproducible only at a fixed world size).
  virtual void all_reduce_sum(float* data, int64_t count) = 0;

  virtual void barrier() = 0;

  // Point-to-point transfers, every rank of the world together (each with its own lists,
  // possibly empty): every `recvs` entry receives the bytes of the one `sends` entry on its
  // peer that names this rank and the same tag. Bulk bytes such as peer replicas travel
  // here, never as control messages. Tags are the caller's and must be unique per pair.
  struct transfer {
    int peer = 0;
    uint32_t tag = 0;
    void* data = nullptr;     // read when sending, written when receiving
    int64_t bytes = 0;
  };
  virtual void exchange(const std::vector<transfer>& sends, const std::vector<transfer>& recvs) = 0;

  // Makes every pending and later collective on every rank of this generation fail at once
  // (a fenced world). Callable from any thread.
  virtual void abort() = 0;
  virtual bool errored() const = 0;
};

// Offsets of back-to-back pieces: offsets[i] = sum(counts[0..i)); size counts.size() + 1.
std::vector<int64_t> prefix_offsets(const std::vector<int64_t>& counts);

}  // namespace lz::engine
