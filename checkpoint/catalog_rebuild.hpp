// catalog_rebuild.hpp: a new catalog from the shard files, when the old one is lost or
// damaged (`lazarus ckpt rebuild-catalog`).
//
// Every step_* directory under the checkpoint root is read: a complete set of shards (every
// rank of one save, headers and every checksum good) becomes a committed, verified
// checkpoint; anything else is recorded as left alone, with the reason, and stays on disk
// untouched. Checks come first: a root without checkpoint directories, shards of more than
// one run, or a run id that contradicts `expect_run_id` change nothing. The old catalog,
// if there is one, is never deleted: it is renamed to catalog.replaced-TIME, and what can
// still be read from it (the recorded spec, the data fingerprint, the events) is carried
// over.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/catalog.hpp"

namespace lz::checkpoint {

struct rebuild_options {
  std::string state_dir;
  std::string root_dir;                      // absolute; holds the step_* directories
  std::optional<std::string> expect_run_id;  // from the state dir's identity, when known
  std::optional<std::string> spec_toml;      // the spec to record when the old one is lost
};

struct rebuild_report {
  std::string run_id;
  std::vector<checkpoint_record> added;                        // ascending by step
  std::vector<std::pair<std::string, std::string>> left_alone;  // dir, why
  std::string old_catalog;       // where the old catalog now is ("" when there was none)
  bool carried_over = false;     // the old catalog could be read and its records kept
  int64_t events_carried = 0;
};

rebuild_report rebuild_catalog(const rebuild_options& options);

}  // namespace lz::checkpoint
