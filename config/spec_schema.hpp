// spec_schema.hpp: the run spec's keys as one table.
//
// Each key has a section, a name, a type, a line of help, whether it may change when a run
// resumes (and why), and a getter/setter into run_spec; its default is whatever the
// run_spec struct holds when default-constructed. Reading, validating, printing and
// comparing specs all walk this table, so a new key is one new row.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/run_spec.hpp"

namespace lz::config {

enum class value_type { integer, floating, boolean, string };

// Whether a key may differ between the spec a run recorded and the spec it resumes with.
enum class resume_rule {
  must_match,  // it shapes the saved state or the data order: a change is refused
  may_change,  // a schedule, a place or a policy: a change is taken from the resume on
  by_content,  // its text may change; the run compares what it names (the files' fingerprint)
};

// "must match", "may change", "compared by content"
std::string_view describe(resume_rule rule);

// A key's value, one alternative per value_type (in the same order).
using spec_value = std::variant<int64_t, double, bool, std::string>;

struct spec_key {
  std::string_view section;  // "model"
  std::string_view name;     // "layers"
  value_type type;
  std::string_view help;     // one line
  resume_rule resume;        // may it change when the run resumes?
  std::string_view resume_reason;  // why, in a few words
  spec_value (*get)(const run_spec& spec);
  void (*set)(run_spec& spec, const spec_value& value);  // value holds `type`

  std::string path() const;  // "model.layers"
  spec_value default_value() const { return get(run_spec{}); }
};

// Every key, grouped by section in the order sections appear in a spec file.
std::span<const spec_key> spec_keys();

// The paths of the keys with `rule`, in table order (for documentation and help).
std::vector<std::string> keys_with_resume_rule(resume_rule rule);

// The key at "section.name", or nullptr.
const spec_key* find_spec_key(std::string_view key_path);

// Sections with keys, in file order: run, model, data, ...
std::span<const std::string_view> spec_sections();

// Sections that are known but hold no keys yet (chaos, security).
std::span<const std::string_view> reserved_spec_sections();
bool is_reserved_section(std::string_view section);
bool is_known_section(std::string_view section);  // with keys or reserved

// The closest known key path ("model.layers" for "model.layer"), when one is close.
std::optional<std::string> suggest_key_path(std::string_view key_path);
// The closest known section name, when one is close.
std::optional<std::string> suggest_section(std::string_view section);

// "an integer", "a float", "a boolean", "a string"
std::string_view describe(value_type type);

// The value as TOML text: 6, 0.001, true, "data/kjv/train_*.bin" (quoted and escaped).
// Floats print in their shortest form that reads back to the same double.
std::string format_value(const spec_value& value);

}  // namespace lz::config
