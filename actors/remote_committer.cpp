// remote_committer.cpp: see remote_committer.hpp.
#include "actors/remote_committer.hpp"

#include "actors/messages.hpp"
#include "actors/wire_records.hpp"
#include "config/error.hpp"

namespace lz::actors {

remote_committer::remote_committer(caf::actor_system& sys, caf::actor catalog,
                                   std::string root_dir, int64_t generation,
                                   std::chrono::milliseconds timeout)
  : sys_(sys), catalog_(std::move(catalog)), root_dir_(std::move(root_dir)),
    generation_(generation), timeout_(timeout) {}

bool remote_committer::begin(int64_t step, int32_t world, int64_t generation) {
  caf::scoped_actor self{sys_};
  bool go = false;
  std::string failure;
  self->request(catalog_, timeout_, msg::save_begin{generation, step, world})
      .receive([&](bool answer) { go = answer; },
               [&](caf::error& e) { failure = sys_.render(e); });
  if (!failure.empty()) {
    LZ_THROW(io_error, "checkpoint: the catalog did not decide on the save of step {}: {}",
             step, failure);
  }
  return go;
}

void remote_committer::shard_durable(int64_t step, const checkpoint::shard_record& shard) {
  caf::anon_send(catalog_, msg::shard_done{generation_, step, to_wire(shard)});
}

void remote_committer::shard_failed(int64_t step, int32_t rank, const std::string& error) {
  caf::anon_send(catalog_, msg::shard_fail{generation_, step, rank, error});
}

}  // namespace lz::actors
