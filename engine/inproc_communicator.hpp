// inproc_communicator.hpp: a world whose ranks are threads of this process.
//
// Every collective is one exchange: each rank posts a pointer to its data, waits until all
// ranks have posted, copies what it needs straight from the others' buffers, and waits until
// all have copied before it returns (so no buffer is reused while another rank reads it).
// A rank that does not arrive within the timeout fails the collective on every waiting rank
// with a comm_error naming it; abort() fails them at once. Used by tests and by the
// one-process run; the result of every collective is bitwise the same as Gloo's.
#pragma once

#include <chrono>
#include <memory>

#include "engine/communicator.hpp"

namespace lz::engine {

class inproc_world {
public:
  inproc_world(int world_size, int64_t generation, std::chrono::milliseconds timeout);
  ~inproc_world();
  inproc_world(const inproc_world&) = delete;
  inproc_world& operator=(const inproc_world&) = delete;

  // The communicator of `rank`; each rank's is used by one thread at a time. The world
  // must outlive them.
  std::unique_ptr<communicator> connect(int rank);
  void abort();

  struct state;

private:
  std::shared_ptr<state> state_;
};

}  // namespace lz::engine
