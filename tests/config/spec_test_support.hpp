// spec_test_support.hpp: helpers shared by the run spec tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"

namespace lz::config::testing {

// The problems parse_spec reports for `text` (fails the test when it reports none).
inline std::vector<spec_problem> problems_of(std::string_view text,
                                             const std::vector<spec_override>& overrides = {}) {
  try {
    parse_spec(text, "test.toml", overrides);
  } catch (const spec_invalid& e) {
    return e.problems();
  }
  ADD_FAILURE() << "expected spec_invalid for:\n" << text;
  return {};
}

// The problems of the embedded default with --set overrides applied ("key=value" each).
inline std::vector<spec_problem> problems_with(const std::vector<std::string>& sets) {
  std::vector<spec_override> overrides;
  for (const std::string& set : sets) overrides.push_back(parse_override(set));
  try {
    embedded_default_spec(overrides);
  } catch (const spec_invalid& e) {
    return e.problems();
  }
  ADD_FAILURE() << "expected spec_invalid for the default with " << ::testing::PrintToString(sets);
  return {};
}

// The message for key_path among problems, or "" when that key has none.
inline std::string message_for(const std::vector<spec_problem>& problems,
                               std::string_view key_path) {
  for (const spec_problem& p : problems)
    if (p.key_path == key_path) return p.message;
  return "";
}

}  // namespace lz::config::testing
