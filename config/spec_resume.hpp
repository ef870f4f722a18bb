// spec_resume.hpp: which keys of a run spec may change when a run resumes.
//
// A resumed run compares the spec it recorded with the spec it is given now, key by key,
// through the schema's resume rule (config/spec_schema.hpp): a change to a key that shapes
// the saved state or the data order is refused, a change to a schedule, place or policy
// is allowed, and the training shards' glob is left to a comparison of the files it
// names. A pure function of the two specs; the caller decides what to log and to refuse.
#pragma once

#include <string>
#include <vector>

#include "config/run_spec.hpp"
#include "config/spec_schema.hpp"

namespace lz::config {

// One key whose value differs; the values as TOML text (format_value).
struct key_change {
  std::string key_path;  // "data.seq_len"
  std::string before;    // as recorded: "128"
  std::string after;     // as given now: "256"
  resume_rule rule;
};

// The differing keys by rule, each list in schema order; an equal key is in none.
struct resume_diff {
  std::vector<key_change> refused;     // must_match keys that changed
  std::vector<key_change> allowed;     // may_change keys that changed
  std::vector<key_change> by_content;  // by_content keys whose text changed

  bool resumable() const { return refused.empty(); }
};

resume_diff compare_for_resume(const run_spec& recorded, const run_spec& now);

// A multi-line message naming each refused key with its recorded and its new value, why
// it must match, and the fix; "" when nothing is refused.
std::string describe_refusal(const resume_diff& diff);

}  // namespace lz::config
