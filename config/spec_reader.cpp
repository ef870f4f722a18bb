// spec_reader.cpp: TOML documents and --set overrides into a run_spec, via the schema.
#include "config/spec_reader.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include <toml++/toml.h>

#include "config/spec_schema.hpp"

namespace lz::config {
namespace {

// A problem and the line it was found at, so problems list in file order.
struct located_problem {
  uint32_t line;
  spec_problem problem;
};

std::string describe_node(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string " + format_value(std::string(node.as_string()->get()));
    case toml::node_type::integer: return fmt::format("integer {}", node.as_integer()->get());
    case toml::node_type::floating_point:
      return "float " + format_value(node.as_floating_point()->get());
    case toml::node_type::boolean: return fmt::format("boolean {}", node.as_boolean()->get());
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date or time";
  }
}

// The node as a value of `type`; an integer is accepted where a float is expected.
std::optional<spec_value> convert(const toml::node& node, value_type type) {
  switch (type) {
    case value_type::integer:
      if (const auto* v = node.as_integer()) return v->get();
      break;
    case value_type::floating:
      if (const auto* v = node.as_floating_point()) return v->get();
      if (const auto* v = node.as_integer()) return static_cast<double>(v->get());
      break;
    case value_type::boolean:
      if (const auto* v = node.as_boolean()) return v->get();
      break;
    case value_type::string:
      if (const auto* v = node.as_string()) return v->get();
      break;
  }
  return std::nullopt;
}

std::string known_keys_of(std::string_view section) {
  std::string names;
  for (const spec_key& key : spec_keys())
    if (key.section == section) names += (names.empty() ? "" : ", ") + std::string(key.name);
  return names;
}

spec_problem unknown_key(std::string_view key_path) {
  const std::string_view section = key_path.substr(0, key_path.find('.'));
  if (is_reserved_section(section))
    return {std::string(key_path),
            fmt::format("not supported yet: [{}] is reserved for a later version and takes "
                        "no keys; remove the key",
                        section)};
  std::string message = "unknown key";
  if (auto near = suggest_key_path(key_path))
    message += fmt::format("; did you mean '{}'?", *near);
  else if (key_path.find('.') == std::string_view::npos)
    message += "; keys belong in a section such as [run] or [model]";
  else if (is_known_section(section))
    message += fmt::format("; the keys of [{}] are {}", section, known_keys_of(section));
  else
    message += "; remove it";
  return {std::string(key_path), message};
}

spec_problem unknown_section(std::string_view section) {
  std::string message = "unknown section";
  if (auto near = suggest_section(section))
    message += fmt::format("; did you mean [{}]?", *near);
  else
    message += "; the sections are [run] [model] [data] [optimizer] [parallel] "
               "[checkpoint] [fault_tolerance] [logging]";
  return {std::string(section), message};
}

// Sets one key from a node; an unknown key or a wrong type becomes a problem instead.
std::optional<spec_problem> set_key(std::string_view key_path, const toml::node& node,
                                    run_spec& spec) {
  const spec_key* key = find_spec_key(key_path);
  if (key == nullptr) return unknown_key(key_path);
  const std::optional<spec_value> value = convert(node, key->type);
  if (!value)
    return spec_problem{std::string(key_path), fmt::format("expected {}, got {}",
                                                           describe(key->type),
                                                           describe_node(node))};
  key->set(spec, *value);
  return std::nullopt;
}

void read_document(const toml::table& document, run_spec& spec,
                   std::vector<located_problem>& found) {
  const auto add = [&](const toml::node& node, spec_problem problem) {
    found.push_back({node.source().begin.line, std::move(problem)});
  };
  for (auto&& [name, node] : document) {
    const std::string_view section = name.str();
    const toml::table* table = node.as_table();
    if (table == nullptr && is_known_section(section)) {
      add(node, {std::string(section), fmt::format("expected a table [{}], got {}", section,
                                                   describe_node(node))});
    } else if (table == nullptr) {
      add(node, unknown_key(section));
    } else if (!is_known_section(section)) {
      add(node, unknown_section(section));
    } else {
      for (auto&& [key_name, value] : *table)
        if (auto problem = set_key(fmt::format("{}.{}", section, key_name.str()), value, spec))
          add(value, std::move(*problem));
    }
  }
}

// The override's text as a TOML node: parsed when it is exactly one TOML value ("6",
// "1e-3", "true", "\"x\""), a bare string otherwise ("data/x/*.bin").
toml::table override_value(std::string_view text) {
  try {
    toml::table parsed = toml::parse(fmt::format("value = {}", text));
    if (parsed.size() == 1 && parsed.contains("value")) return parsed;
  } catch (const toml::parse_error&) {
    // Not a TOML value: it is read as a bare string below.
  }
  toml::table bare;
  bare.insert("value", std::string(text));
  return bare;
}

}  // namespace

bool read_spec_toml(std::string_view toml_text, std::string_view source, run_spec& spec,
                    std::vector<spec_problem>& problems) {
  toml::table document;
  try {
    document = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    const toml::source_position where = e.source().begin;
    problems.push_back({"", fmt::format("line {}:{}: TOML syntax error: {}", where.line,
                                        where.column, e.description())});
    return false;
  }
  std::vector<located_problem> found;
  read_document(document, spec, found);
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.line < b.line; });
  for (located_problem& p : found) problems.push_back(std::move(p.problem));
  return true;
}

void apply_override(const spec_override& change, run_spec& spec,
                    std::vector<spec_problem>& problems) {
  toml::table parsed = override_value(change.value);
  const spec_key* key = find_spec_key(change.key_path);
  // A string key takes the text as it is ("123" too) unless it is a quoted TOML string.
  if (key != nullptr && key->type == value_type::string && !parsed.get("value")->is_string())
    parsed.insert_or_assign("value", change.value);
  std::optional<spec_problem> problem = set_key(change.key_path, *parsed.get("value"), spec);
  if (problem) {
    problem->source = std::string(override_source);
    problems.push_back(std::move(*problem));
  }
}

}  // namespace lz::config
