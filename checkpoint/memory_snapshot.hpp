// memory_snapshot.hpp: the in-memory restore points of a rank (DESIGN.md, sections 2 and 5).
//
// Every fault_tolerance.replica_every_steps steps each rank copies its part of a checkpoint
// (the weights, adam_m and adam_v of the flat range it owns) into memory, and sends the same
// bytes to a buddy rank on another node, which keeps them as its replica. The copies outlive
// the rank's world: a survivor of a fault keeps both, so the next world can restore from
// memory instead of disk when the copies the world's ranks hold, taken after the same step,
// cover the whole flat vector.
//
// This file holds the data and the pure decisions: which step the held copies can restore,
// and which piece of which copy each rank of the new world reads, from itself or a peer.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "checkpoint/reshard.hpp"

namespace lz::checkpoint {

// The three tensors of a shard, over `range` of the flat vectors, after `step` steps.
struct held_copy {
  int64_t step = -1;             // -1: nothing held
  flat_range range;
  std::vector<float> params, adam_m, adam_v;

  bool held() const { return step >= 0; }
  void resize(flat_range r);     // keeps the buffers' capacity
};

// What one worker process keeps across its worlds.
struct memory_snapshot {
  held_copy own;                 // this rank's range
  held_copy replica;             // its buddy's range
  held_copy own_next, replica_next;  // being filled; swapped in once both are complete
};

// A copy held by a rank of the world being restored.
struct held_range {
  int32_t rank = 0;              // in the new world
  int32_t which = 0;             // 0: its own copy, 1: its replica
  int64_t step = -1;
  flat_range range;
};

// The newest step whose held copies together cover [0, total); none when no step does.
std::optional<int64_t> newest_covered_step(const std::vector<held_range>& held, int64_t total);

// One piece of a memory restore: rank `to` gets [range) of one tensor from the copy
// `held[copy]` of rank held[copy].rank (itself when that is `to`).
struct memory_piece {
  int32_t to = 0;
  size_t copy = 0;
  flat_range range;
};

// The pieces that give every rank `to` of the world the ranges wanted[to] from the copies
// `held` (all of one step). Each piece comes from the rank's own copies when they cover it,
// else from the lowest rank that holds it; pieces are in (to, element) order, the same on
// every rank that computes them. Throws when a wanted element is held by nobody.
std::vector<memory_piece> plan_memory_restore(const std::vector<held_range>& held,
                                              const std::vector<std::vector<flat_range>>& wanted);

// The buddy of every rank: rank r sends its copy to (r + shift) % world, where shift is the
// smallest that sends the most copies to another node (`node_of[r]` is rank r's node). 0
// when the world has one rank.
int32_t replica_shift(const std::vector<int32_t>& node_of);

}  // namespace lz::checkpoint
