// store_actor.hpp: the rendezvous store of a run, served by the coordinator.
//
// The ranks of a generation publish their communicator addresses here and wait for each
// other's (engine/rendezvous_store.hpp: keys are under the generation's own prefix, and a
// key is never overwritten or forgotten). A get for a key nobody set yet is answered when
// it is set, or with an error when its timeout passes: a wait here is never unbounded.
// remote_store is the rank's side: the engine's store interface over blocking requests.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "engine/rendezvous_store.hpp"

namespace lz::actors {

// What the store holds at most: keys and values of every generation stay (a key is never
// overwritten), so a peer that keeps setting keys (a bug, a stranger) is refused, not fed.
struct store_limits {
  size_t max_bytes = size_t{256} << 20;  // keys and values together
};

caf::behavior store_actor(caf::event_based_actor* self, store_limits limits);

class remote_store final : public engine::rendezvous_store {
public:
  remote_store(caf::actor_system& sys, caf::actor store);
  void set(const std::string& key, const std::vector<char>& value) override;
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override;

private:
  caf::actor_system& sys_;
  caf::actor store_;
};

}  // namespace lz::actors
