// spec_format.cpp: a resolved run spec as an aligned table and as TOML text.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "config/run_spec.hpp"
#include "config/spec_schema.hpp"

namespace lz::config {
namespace {

size_t widest_path() {
  size_t width = 0;
  for (const spec_key& key : spec_keys()) width = std::max(width, key.path().size());
  return width;
}

}  // namespace

std::string format_spec_table(const run_spec& spec) {
  size_t value_width = std::string_view("value").size();
  for (const spec_key& key : spec_keys())
    value_width = std::max(value_width, format_value(key.get(spec)).size());
  const size_t key_width = widest_path();

  std::string table = fmt::format("  {:<{}}  {:<{}}  {}\n", "key", key_width, "value",
                                  value_width, "help");
  for (const spec_key& key : spec_keys()) {
    const spec_value value = key.get(spec);
    const char mark = value == key.default_value() ? ' ' : '*';
    table += fmt::format("{} {:<{}}  {:<{}}  {}\n", mark, key.path(), key_width,
                         format_value(value), value_width, key.help);
  }
  return table + "(* differs from the default)\n";
}

std::string format_spec_toml(const run_spec& spec) {
  std::string text = "# Lazarus run spec, resolved: every key with its value and help line.\n";
  for (const std::string_view section : spec_sections()) {
    std::vector<std::pair<std::string, std::string_view>> lines;  // "key = value", help
    size_t width = 0;
    for (const spec_key& key : spec_keys()) {
      if (key.section != section) continue;
      lines.emplace_back(fmt::format("{} = {}", key.name, format_value(key.get(spec))), key.help);
      width = std::max(width, lines.back().first.size());
    }
    text += fmt::format("\n[{}]\n", section);
    for (const auto& [assignment, help] : lines)
      text += fmt::format("{:<{}}  # {}\n", assignment, width, help);
  }
  text += "\n# [chaos] and [security] are reserved for later versions.\n";
  return text;
}

}  // namespace lz::config
