// retention.hpp: which checkpoints to delete -- a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/catalog.hpp"

namespace lz::checkpoint {

struct retention_policy {
  int64_t keep_last = 3;   // the newest K committed checkpoints
  int64_t keep_every = 0;  // and every checkpoint whose step is a multiple of M (0: none)
};

struct retention_decision {
  std::vector<int64_t> delete_steps;  // ascending
  std::string reason;                  // one line: what is kept and why
};

// Given every checkpoint in the catalog (ascending by step): keeps the newest keep_last
// committed ones, every keep_every-th step, and always the newest verified committed one;
// deletes the rest, corrupt ones included once a newer committed checkpoint exists.
retention_decision choose_deletions(const std::vector<checkpoint_record>& checkpoints,
                                    const retention_policy& policy);

}  // namespace lz::checkpoint
