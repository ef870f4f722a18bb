// spec_reader.hpp: reading TOML text and --set overrides into a run_spec, key by key.
//
// Nothing here stops at the first problem: each unknown key or wrong type is appended to
// `problems` and the key keeps its default. Range rules are spec_validate's job.
#pragma once

#include <string_view>
#include <vector>

#include "config/run_spec.hpp"

namespace lz::config {

// Reads toml_text over the values already in spec. Returns false on a TOML syntax error
// (one problem with line:column, nothing read), true otherwise.
bool read_spec_toml(std::string_view toml_text, std::string_view source, run_spec& spec,
                    std::vector<spec_problem>& problems);

// Applies one --set override; its problems carry the source "--set".
void apply_override(const spec_override& change, run_spec& spec,
                    std::vector<spec_problem>& problems);

inline constexpr std::string_view override_source = "--set";

}  // namespace lz::config
