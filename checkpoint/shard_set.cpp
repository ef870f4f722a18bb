#include "checkpoint/shard_set.hpp"

#include <algorithm>
#include <functional>
#include <map>

#include "config/error.hpp"

namespace lz::checkpoint {

namespace {

using reader_list = std::vector<std::unique_ptr<shard_reader>>;

// A field every shard of one checkpoint shares, and how a mismatch reads: "shard 'x' is
// <phrase> A, the others <phrase> B".
struct shared_field {
  const char* phrase;
  std::function<std::string(const shard_meta&)> value;
};

// Finds the odd one out: the value most shards hold counts as the checkpoint's (on a tie,
// the first file's), and the first shard that differs from it is named.
void check_shared(const reader_list& readers, const shared_field& field) {
  std::map<std::string, size_t> votes;
  for (const auto& r : readers) ++votes[field.value(r->info().meta)];
  std::string common = field.value(readers.front()->info().meta);
  for (const auto& [value, count] : votes) {
    if (count > votes.at(common)) common = value;
  }
  for (const auto& r : readers) {
    const std::string value = field.value(r->info().meta);
    if (value != common) {
      LZ_THROW(format_error, "shard '{}' is {} {}, the others {} {}: the files of different "
               "checkpoints are mixed; pass the shards of one checkpoint", r->path(),
               field.phrase, value, field.phrase, common);
    }
  }
}

}  // namespace

shard_set::shard_set(const std::vector<std::string>& paths) {
  if (paths.empty()) LZ_THROW(format_error, "no shard files given for the checkpoint");
  reader_list opened;
  for (const std::string& p : paths) opened.push_back(std::make_unique<shard_reader>(p));

  const shared_field fields[] = {
      {"from run", [](const shard_meta& m) { return "'" + m.run_id + "'"; }},
      {"from step", [](const shard_meta& m) { return std::to_string(m.step); }},
      {"saved by world size", [](const shard_meta& m) { return std::to_string(m.world_size); }},
      {"of a flat total of", [](const shard_meta& m) { return std::to_string(m.flat_total); }},
      {"for model", [](const shard_meta& m) { return "'" + m.model + "'"; }},
  };
  for (const shared_field& f : fields) check_shared(opened, f);

  // Place each shard at its rank at save; the reader has checked 0 <= rank < world.
  const int32_t world = opened.front()->info().meta.world_size;
  readers_.resize(static_cast<size_t>(world));
  for (auto& r : opened) {
    auto& slot = readers_[static_cast<size_t>(r->info().meta.rank)];
    if (slot) {
      LZ_THROW(format_error, "shards '{}' and '{}' are both rank {} of {}: pass each rank's "
               "shard once", slot->path(), r->path(), r->info().meta.rank, world);
    }
    slot = std::move(r);
  }
  for (size_t rank = 0; rank < readers_.size(); ++rank) {
    if (!readers_[rank]) {
      LZ_THROW(format_error, "rank {} of {} is missing from the {} shards given (first: '{}'): "
               "a checkpoint is loadable only with every rank's shard", rank, world,
               paths.size(), paths.front());
    }
  }

  // The ranges must partition [0, total). shard_range() hands them out in rank order, but
  // the format does not depend on it, so they are checked in element order.
  std::vector<const shard_reader*> by_begin;
  for (const auto& r : readers_) by_begin.push_back(r.get());
  std::stable_sort(by_begin.begin(), by_begin.end(), [](const shard_reader* a,
                                                        const shard_reader* b) {
    return a->info().meta.range.begin < b->info().meta.range.begin;
  });
  int64_t next = 0;
  for (const shard_reader* r : by_begin) {
    const shard_meta& m = r->info().meta;
    if (m.range.size() == 0 && m.range.begin <= next) continue;  // more ranks than elements
    if (m.range.begin != next) {
      LZ_THROW(format_error, "shard '{}' (rank {} of {}) holds [{}, {}) but the shards before "
               "it end at {}: the ranges do not partition the flat vectors", r->path(), m.rank,
               world, m.range.begin, m.range.end, next);
    }
    next = m.range.end;
  }
  if (next != meta().flat_total) {
    LZ_THROW(format_error, "the shards of '{}' cover [0, {}) of {} elements: the ranges do not "
             "partition the flat vectors", readers_.back()->path(), next, meta().flat_total);
  }
}

const shard_meta& shard_set::meta() const { return readers_.front()->info().meta; }

void shard_set::read(const std::string& name, flat_range want, float* out) {
  std::vector<flat_range> ranges;
  ranges.reserve(readers_.size());
  for (const auto& r : readers_) ranges.push_back(r->info().meta.range);
  for (const range_read& piece : plan_reads(ranges, want)) {
    readers_[static_cast<size_t>(piece.rank)]->read_range(name, piece.range,
                                                          out + (piece.range.begin - want.begin));
  }
}

void shard_set::verify_all() {
  for (const auto& r : readers_) r->verify_all();
}

}  // namespace lz::checkpoint
