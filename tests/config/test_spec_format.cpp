// test_spec_format.cpp: the key table, and printing a spec as a table and as TOML.
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"
#include "config/spec_schema.hpp"

namespace lz::config {
namespace {

// A value of the key's type that differs from its default and passes validation.
spec_value changed_value(const spec_key& key) {
  const spec_value old = key.default_value();
  switch (key.type) {
    case value_type::integer: return std::get<int64_t>(old) + 1;
    case value_type::floating: return std::get<double>(old) * 0.5 + 0.0625;
    case value_type::boolean: return !std::get<bool>(old);
    case value_type::string: return std::get<std::string>(old) + "x";
  }
  return old;
}

std::string line_of(const std::string& text, std::string_view needle) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find(needle) != std::string::npos) return line;
  return "";
}

TEST(spec_schema, key_paths_are_unique_and_found_by_path) {
  std::set<std::string> paths;
  for (const spec_key& key : spec_keys()) {
    EXPECT_TRUE(paths.insert(key.path()).second) << key.path();
    EXPECT_EQ(find_spec_key(key.path()), &key);
    EXPECT_FALSE(key.help.empty()) << key.path();
  }
  EXPECT_EQ(find_spec_key("model.layer"), nullptr);
  EXPECT_EQ(find_spec_key("model"), nullptr);
}

TEST(spec_schema, each_key_sets_its_own_field_and_no_other) {
  for (const spec_key& key : spec_keys()) {
    run_spec spec;
    const spec_value value = changed_value(key);
    key.set(spec, value);
    EXPECT_EQ(key.get(spec), value) << key.path();
    for (const spec_key& other : spec_keys()) {
      if (&other == &key) continue;
      EXPECT_EQ(other.get(spec), other.default_value()) << key.path() << " changed "
                                                        << other.path();
    }
  }
}

TEST(format_spec_toml, the_default_reads_back_equal) {
  const run_spec spec{};
  EXPECT_TRUE(parse_spec(format_spec_toml(spec), "printed") == spec) << format_spec_toml(spec);
}

TEST(format_spec_toml, awkward_strings_and_doubles_read_back_exactly) {
  run_spec spec;
  spec.run.name = "quote \" backslash \\ tab \t newline \n bell \x07 unicode \xc3\xa9";
  spec.data.train_shards = "C:\\data\\*.bin";
  spec.run.seed = 9223372036854775807ull;
  spec.optimizer.lr = 0.1 + 0.2;
  spec.optimizer.eps = 1e-300;
  spec.optimizer.grad_clip = 3.0;
  spec.optimizer.weight_decay = 123456789.125;
  spec.run.sample_temperature = 1.0 / 3.0;
  const std::string text = format_spec_toml(spec);
  EXPECT_TRUE(parse_spec(text, "printed") == spec) << text;
  EXPECT_NE(text.find("grad_clip = 3.0"), std::string::npos) << text;
}

TEST(format_spec_toml, every_changed_key_reads_back_equal) {
  run_spec spec;
  for (const spec_key& key : spec_keys())
    if (key.type != value_type::integer) key.set(spec, changed_value(key));
  spec.model.layers = 12;
  spec.parallel.ranks = 2;
  spec.logging.level = "warn";
  spec.checkpoint.when_busy = "skip";  // enumerations: the generic change is not a member
  spec.parallel.reduction = "fast";
  spec.parallel.communicator = "gloo";
  EXPECT_TRUE(parse_spec(format_spec_toml(spec), "printed") == spec) << format_spec_toml(spec);
}

TEST(format_spec_table, lists_every_key_with_its_value_and_help) {
  const std::string table = format_spec_table(run_spec{});
  for (const spec_key& key : spec_keys()) {
    const std::string line = line_of(table, key.path() + " ");
    EXPECT_NE(line, "") << key.path();
    EXPECT_NE(line.find(format_value(key.get(run_spec{}))), std::string::npos) << line;
    EXPECT_NE(line.find(key.help), std::string::npos) << line;
    EXPECT_EQ(line[0], ' ') << "a default value is not marked: " << line;
  }
}

TEST(format_spec_table, marks_values_that_differ_from_the_defaults) {
  run_spec spec;
  spec.model.layers = 6;
  spec.data.train_shards = "data/x/*.bin";
  const std::string table = format_spec_table(spec);
  EXPECT_EQ(line_of(table, "model.layers ").rfind("* model.layers ", 0), 0u) << table;
  EXPECT_NE(line_of(table, "model.layers ").find(" 6 "), std::string::npos) << table;
  EXPECT_EQ(line_of(table, "data.train_shards ")[0], '*') << table;
  EXPECT_EQ(line_of(table, "model.heads ")[0], ' ') << table;
}

TEST(format_spec_table, columns_are_aligned) {
  const std::string table = format_spec_table(run_spec{});
  const size_t help_column = line_of(table, "run.name ").find("run name");
  EXPECT_EQ(line_of(table, "model.layers ").find("L: transformer blocks"), help_column);
  EXPECT_EQ(line_of(table, "logging.level ").find("trace, debug"), help_column);
}

}  // namespace
}  // namespace lz::config
