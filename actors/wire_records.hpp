// wire_records.hpp: the catalog's records as they travel in messages (messages.hpp), and
// back: one place for the field-by-field copies.
#pragma once

#include "actors/messages.hpp"
#include "checkpoint/catalog.hpp"

namespace lz::actors {

inline msg::wire_shard to_wire(const checkpoint::shard_record& s) {
  return {s.rank, s.file, s.bytes, s.header_xxh3, s.range.begin, s.range.end};
}

inline checkpoint::shard_record from_wire(const msg::wire_shard& w) {
  return {w.rank, w.file, w.bytes, w.header_xxh3, {w.range_begin, w.range_end}};
}

// A committed checkpoint as a restore_from (generation left 0: the sender sets it).
inline msg::restore_from to_wire(const checkpoint::checkpoint_record& r) {
  msg::restore_from m;
  m.step = r.step;
  m.ckpt_generation = r.generation;
  m.world_size = r.world_size;
  m.dir = r.dir;
  for (const auto& s : r.shards) m.shards.push_back(to_wire(s));
  return m;
}

inline checkpoint::checkpoint_record from_wire(const msg::restore_from& m) {
  checkpoint::checkpoint_record r;
  r.step = m.step;
  r.generation = m.ckpt_generation;
  r.world_size = m.world_size;
  r.dir = m.dir;
  for (const auto& s : m.shards) r.shards.push_back(from_wire(s));
  return r;
}

}  // namespace lz::actors
