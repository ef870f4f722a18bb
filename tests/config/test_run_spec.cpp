// test_run_spec.cpp: reading run specs, and the problems reported for broken ones.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "config/run_spec.hpp"
#include "tests/config/spec_test_support.hpp"

namespace lz::config {
namespace {

using testing::message_for;
using testing::problems_of;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string example(const std::string& name) {
  return std::string(LZ_SOURCE_DIR) + "/config/examples/" + name;
}

TEST(embedded_default, parses_and_equals_the_struct_defaults) {
  const run_spec spec = embedded_default_spec();
  EXPECT_TRUE(spec == run_spec{}) << format_spec_table(spec);
}

TEST(embedded_default, is_the_text_of_tiny_toml) {
  EXPECT_EQ(embedded_default_spec_text(), read_text(example("tiny.toml")));
}

TEST(examples, small_toml_is_a_valid_L6_C384_model) {
  const run_spec spec = load_spec_file(example("small.toml"));
  EXPECT_EQ(spec.model.layers, 6);
  EXPECT_EQ(spec.model.channels, 384);
  EXPECT_EQ(spec.model.heads, 6);
  EXPECT_EQ(spec.model.vocab_size, 256);
  EXPECT_EQ(spec.data.seq_len, 256);
  EXPECT_EQ(spec.data.micro_batch, 4);
  EXPECT_EQ(spec.data.slots, 4);
  EXPECT_EQ(spec.run.steps, 2000);
}

TEST(examples, gpt2_124m_toml_is_a_valid_gpt2_small) {
  const run_spec spec = load_spec_file(example("gpt2_124m.toml"));
  EXPECT_EQ(spec.model.layers, 12);
  EXPECT_EQ(spec.model.channels, 768);
  EXPECT_EQ(spec.model.heads, 12);
  EXPECT_EQ(spec.model.vocab_size, 50257);
  EXPECT_EQ(spec.resolved_padded_vocab(), 50304);
  EXPECT_EQ(spec.model.max_seq_len, 1024);
  EXPECT_EQ(spec.data.seq_len, 64);
  EXPECT_EQ(spec.data.micro_batch, 4);
}

TEST(padded_vocab, zero_rounds_up_to_a_multiple_of_128) {
  run_spec spec;
  EXPECT_EQ(spec.resolved_padded_vocab(), 256);
  spec.model.vocab_size = 50257;
  EXPECT_EQ(spec.resolved_padded_vocab(), 50304);
  spec.model.vocab_size = 300;
  EXPECT_EQ(spec.resolved_padded_vocab(), 384);
  spec.model.padded_vocab_size = 512;
  EXPECT_EQ(spec.resolved_padded_vocab(), 512);
}

TEST(parse_spec, keys_left_out_keep_their_defaults) {
  const run_spec spec = parse_spec("[model]\nlayers = 2\n", "test.toml");
  run_spec expected;
  expected.model.layers = 2;
  EXPECT_TRUE(spec == expected);
}

TEST(parse_spec, an_integer_is_accepted_where_a_float_is_expected) {
  EXPECT_EQ(parse_spec("[optimizer]\nlr = 1\n", "test.toml").optimizer.lr, 1.0);
}

TEST(parse_spec, empty_reserved_sections_are_accepted) {
  EXPECT_NO_THROW(parse_spec("[fault_tolerance]\n[chaos]\n[security]\n", "test.toml"));
}

TEST(spec_problems, a_syntax_error_names_its_line_and_column) {
  const auto problems = problems_of("[model]\nlayers = 4\nheads = = 4\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].key_path, "");
  EXPECT_NE(problems[0].message.find("line 3:"), std::string::npos) << problems[0].message;
  EXPECT_NE(problems[0].message.find("TOML syntax error"), std::string::npos);
}

TEST(spec_problems, an_unknown_key_suggests_the_nearest_known_one) {
  const auto problems = problems_of("[model]\nlayer = 6\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].key_path, "model.layer");
  EXPECT_EQ(problems[0].message, "unknown key; did you mean 'model.layers'?");
}

TEST(spec_problems, an_unknown_key_far_from_any_lists_its_section_keys) {
  const std::string message = message_for(problems_of("[run]\nflux_capacitor = 1\n"),
                                          "run.flux_capacitor");
  EXPECT_NE(message.find("the keys of [run] are name, steps, seed"), std::string::npos)
      << message;
}

TEST(spec_problems, a_right_key_in_the_wrong_section_suggests_where_it_belongs) {
  EXPECT_EQ(message_for(problems_of("[optimizer]\nseed = 3\n"), "optimizer.seed"),
            "unknown key; did you mean 'run.seed'?");
  EXPECT_EQ(message_for(problems_of("steps = 3\n"), "steps"),
            "unknown key; did you mean 'run.steps'?");
}

TEST(spec_problems, a_misspelt_section_suggests_the_right_one) {
  EXPECT_EQ(message_for(problems_of("[modle]\nlayers = 4\n"), "modle"),
            "unknown section; did you mean [model]?");
}

TEST(spec_problems, a_key_in_a_reserved_section_is_not_supported_yet) {
  const std::string message =
      message_for(problems_of("[chaos]\nkill_every_steps = 3\n"), "chaos.kill_every_steps");
  EXPECT_NE(message.find("not supported yet"), std::string::npos) << message;
}

TEST(spec_problems, a_section_given_a_plain_value_expects_a_table) {
  EXPECT_EQ(message_for(problems_of("model = 3\n"), "model"),
            "expected a table [model], got integer 3");
}

TEST(spec_problems, a_wrong_type_names_the_expected_and_the_given_value) {
  EXPECT_EQ(message_for(problems_of("[model]\nlayers = \"four\"\n"), "model.layers"),
            "expected an integer, got string \"four\"");
  EXPECT_EQ(message_for(problems_of("[model]\nlayers = 4.5\n"), "model.layers"),
            "expected an integer, got float 4.5");
  EXPECT_EQ(message_for(problems_of("[checkpoint]\nasync = 1\n"), "checkpoint.async"),
            "expected a boolean, got integer 1");
  EXPECT_EQ(message_for(problems_of("[run]\nname = true\n"), "run.name"),
            "expected a string, got boolean true");
  EXPECT_EQ(message_for(problems_of("[optimizer]\nlr = [1]\n"), "optimizer.lr"),
            "expected a float, got an array");
}

TEST(spec_problems, what_lists_one_problem_per_line_as_source_key_message) {
  try {
    parse_spec("[model]\nlayers = \"four\"\n", "my.toml");
    FAIL() << "expected spec_invalid";
  } catch (const spec_invalid& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("my.toml: model.layers: expected an integer, got string \"four\"\n", 0),
              0u) << what;
    EXPECT_NE(what.find("1 problem in run spec my.toml"), std::string::npos) << what;
    EXPECT_EQ(e.source(), "my.toml");
  }
}

TEST(spec_problems, every_problem_is_reported_together_in_one_exception) {
  const char* text =
      "[run]\nstep = 10\n"                   // unknown key
      "[model]\nlayers = \"four\"\n"          // wrong type
      "heads = 3\n"                         // 128 % 3 != 0
      "[optimizer]\nlr = -1.0\n"            // out of range
      "[parallel]\nranks = 4\n"             // more ranks than data.slots
      "[oops]\n";                           // unknown section
  const auto problems = problems_of(text);
  ASSERT_EQ(problems.size(), 6u);
  EXPECT_NE(message_for(problems, "run.step"), "");
  EXPECT_NE(message_for(problems, "model.layers"), "");
  EXPECT_NE(message_for(problems, "model.heads"), "");
  EXPECT_NE(message_for(problems, "optimizer.lr"), "");
  EXPECT_NE(message_for(problems, "data.slots"), "");
  EXPECT_NE(message_for(problems, "oops"), "");
}

TEST(spec_problems, a_key_with_the_wrong_type_is_reported_once) {
  const auto problems = problems_of("[data]\nseq_len = \"long\"\n[model]\nmax_seq_len = 64\n");
  // seq_len keeps its default 128 > 64, but the type error is the one to fix.
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].key_path, "data.seq_len");
}

TEST(load_spec_file, a_missing_file_names_the_path_and_the_fix) {
  try {
    load_spec_file("/nonexistent/dir/run.toml");
    FAIL() << "expected spec_error";
  } catch (const spec_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/nonexistent/dir/run.toml"), std::string::npos) << what;
    EXPECT_NE(what.find("does not exist"), std::string::npos) << what;
    EXPECT_NE(what.find("embedded default"), std::string::npos) << what;
  }
}

TEST(load_spec_file, a_directory_is_not_a_spec) {
  EXPECT_THROW(load_spec_file(std::string(LZ_SOURCE_DIR) + "/config"), spec_error);
}

TEST(load_spec_file, problems_name_the_file_as_source) {
  const auto path = std::filesystem::temp_directory_path() / "lazarus_test_bad_spec.toml";
  std::ofstream(path) << "[model]\nheads = 0\n";
  try {
    load_spec_file(path.string());
    ADD_FAILURE() << "expected spec_invalid";
  } catch (const spec_invalid& e) {
    EXPECT_EQ(e.source(), path.string());
    EXPECT_EQ(e.problems().at(0).key_path, "model.heads");
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lz::config
