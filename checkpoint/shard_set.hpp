// shard_set.hpp: loading the flat vectors of one checkpoint from its shards, at any world
// size (resharding by range intersection).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "checkpoint/shard_format.hpp"

namespace lz::checkpoint {

// Opens the shards of one checkpoint (one file per rank at save, any order) and checks that
// they belong together: the same run id, step, world size and flat total; ranks 0..W-1 each
// exactly once; ranges that partition [0, total). Every mismatch is a format_error naming
// the file and what differs (a shard from another run, from another step, a missing rank).
class shard_set {
public:
  explicit shard_set(const std::vector<std::string>& paths);

  const shard_meta& meta() const;  // rank 0's metadata
  int64_t world_size() const { return static_cast<int64_t>(readers_.size()); }
  const shard_reader& shard(int64_t rank) const { return *readers_.at(static_cast<size_t>(rank)); }

  // Fills out (want.size() floats) with elements [want) of tensor `name`, reading only the
  // byte ranges that hold them; checksums of every chunk read are verified (corrupt_shard).
  void read(const std::string& name, flat_range want, float* out);
  // verify_all() on every shard.
  void verify_all();

private:
  std::vector<std::unique_ptr<shard_reader>> readers_;  // indexed by rank at save
};

}  // namespace lz::checkpoint
