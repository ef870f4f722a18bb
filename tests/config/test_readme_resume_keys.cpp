// The README's list of spec keys that may or may not change on resume is the schema's.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "config/spec_schema.hpp"

namespace {

using lz::config::resume_rule;

// The README's bullet for one rule: from its bold heading to the next bullet or blank line.
std::string readme_bullet(const std::string& heading) {
  std::ifstream in(std::string(LZ_SOURCE_DIR) + "/README.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const size_t at = text.find("- **" + heading + "**");
  if (at == std::string::npos) return "";
  size_t end = text.find("\n- ", at + 1);
  end = std::min(end, text.find("\n\n", at + 1));
  return text.substr(at, end - at);
}

TEST(readme, lists_every_spec_key_under_its_resume_rule) {
  const std::pair<resume_rule, const char*> rules[] = {
      {resume_rule::must_match, "Must match"},
      {resume_rule::by_content, "Compared by content"},
      {resume_rule::may_change, "May change"}};
  for (const auto& [rule, heading] : rules) {
    const std::string bullet = readme_bullet(heading);
    ASSERT_FALSE(bullet.empty()) << "README.md has no '- **" << heading << "**' bullet";
    for (const std::string& key : lz::config::keys_with_resume_rule(rule)) {
      EXPECT_NE(bullet.find("`" + key + "`"), std::string::npos)
          << key << " is missing from the README's '" << heading << "' list";
    }
    for (const auto& [other, other_heading] : rules) {
      if (other == rule) continue;
      for (const std::string& key : lz::config::keys_with_resume_rule(other)) {
        EXPECT_EQ(bullet.find("`" + key + "`"), std::string::npos)
            << key << " (" << other_heading << ") is listed under '" << heading << "'";
      }
    }
  }
}

}  // namespace
