// spec_validate.hpp: the range and cross-field rules of a run spec.
#pragma once

#include <vector>

#include "config/run_spec.hpp"

namespace lz::config {

// Every rule the spec breaks, each naming its key path and how to fix it (empty: valid).
std::vector<spec_problem> validate_spec(const run_spec& spec);

}  // namespace lz::config
