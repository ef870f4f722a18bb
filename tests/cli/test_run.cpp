// `lazarus run` end to end on the real corpus (the King James Bible, byte-level).
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "checkpoint/llmc_format.hpp"
#include "engine/digest.hpp"
#include "engine/token_shard.hpp"
#include "tests/cli/cli_support.hpp"

namespace {

using lz::test::json_field;
using lz::test::json_number;
using lz::test::read_file;
using lz::test::run_lazarus;

// Entropy (nats) of the byte distribution of the training shards: the loss of the best
// model that ignores context.
double unigram_entropy_nats() {
  const auto tokens =
      lz::engine::read_token_shard(std::string(LZ_TESTDATA) + "/kjv/train_000.bin", 256);
  std::map<uint16_t, double> counts;
  for (uint16_t t : tokens) counts[t] += 1.0;
  double h = 0.0;
  for (const auto& [t, c] : counts) {
    const double p = c / static_cast<double>(tokens.size());
    h -= p * std::log(p);
  }
  return h;
}

TEST(lazarus_run, embedded_default_learns_far_below_unigram_entropy) {
  const std::string dir = lz::test::test_dir("default");
  const auto r = run_lazarus("run --no-progress --state-dir " + dir + lz::test::corpus_set_args(),
                             dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string summary = read_file(dir + "/summary.json");
  const double entropy = unigram_entropy_nats();
  const double val_loss = json_number(summary, "val_loss");
  std::printf("unigram entropy %.3f nats, validation loss after %s steps %.3f\n", entropy,
              json_field(summary, "steps").c_str(), val_loss);
  EXPECT_GT(entropy, 2.8);  // English bytes: about 3 nats
  EXPECT_LT(val_loss, entropy - 0.6);

  // metrics: one line per step with the documented fields; val_loss on evaluation steps
  const std::string metrics = read_file(dir + "/metrics.jsonl");
  std::istringstream lines(metrics);
  std::string line;
  int64_t count = 0, with_val = 0;
  while (std::getline(lines, line)) {
    count++;
    EXPECT_EQ(json_number(line, "step"), static_cast<double>(count));
    for (const char* key : {"loss", "lr", "grad_norm", "step_ms", "tokens_per_s"}) {
      EXPECT_TRUE(std::isfinite(json_number(line, key))) << key << " in " << line;
    }
    if (!json_field(line, "val_loss").empty()) with_val++;
  }
  EXPECT_EQ(std::to_string(count), json_field(summary, "steps"));
  EXPECT_GE(with_val, 2);
  for (const char* key : {"final_loss", "tokens_per_s"}) {
    EXPECT_TRUE(std::isfinite(json_number(summary, key))) << key;
  }
  EXPECT_EQ(json_field(summary, "weights_sha256").size(), 64u);
  EXPECT_FALSE(read_file(dir + "/sample.txt").empty());
  EXPECT_NE(r.output.find("--- sample"), std::string::npos);
}

std::string short_run_args(const std::string& dir) {
  return "run --no-progress --state-dir " + dir + lz::test::corpus_set_args() +
         " --set run.steps=12 --set data.seq_len=64 --set run.val_every_steps=6"
         " --set run.sample_tokens=0";
}

TEST(lazarus_run, same_spec_twice_gives_identical_weights) {
  const std::string a = lz::test::test_dir("determinism-a");
  const std::string b = lz::test::test_dir("determinism-b");
  ASSERT_EQ(run_lazarus(short_run_args(a), a).exit_code, 0);
  ASSERT_EQ(run_lazarus(short_run_args(b), b).exit_code, 0);
  const std::string sa = read_file(a + "/summary.json"), sb = read_file(b + "/summary.json");
  EXPECT_EQ(json_field(sa, "weights_sha256"), json_field(sb, "weights_sha256"));
  EXPECT_EQ(json_field(sa, "final_loss"), json_field(sb, "final_loss"));
  EXPECT_EQ(read_file(a + "/final_model.bin"), read_file(b + "/final_model.bin"));
  // and a different seed gives different weights
  const std::string c = lz::test::test_dir("determinism-c");
  ASSERT_EQ(run_lazarus(short_run_args(c) + " --set run.seed=7", c).exit_code, 0);
  EXPECT_NE(json_field(read_file(c + "/summary.json"), "weights_sha256"),
            json_field(sa, "weights_sha256"));
}

TEST(lazarus_run, export_then_import_round_trips_weights_bit_for_bit) {
  const std::string a = lz::test::test_dir("export-a");
  ASSERT_EQ(run_lazarus(short_run_args(a), a).exit_code, 0);
  const std::string out = a + "/exported.bin";
  const auto e = run_lazarus("ckpt export --format llmc " + a + " " + out, a);
  ASSERT_EQ(e.exit_code, 0) << e.output;

  // the exported file is an llm.c model whose parameters hash to the run's weights
  const auto model = lz::checkpoint::read_llmc_model(out);
  EXPECT_EQ(model.header.layers, 4);
  EXPECT_EQ(model.header.vocab_size, 256);
  const std::string summary = read_file(a + "/summary.json");
  EXPECT_EQ(lz::engine::sha256_hex(model.params.data(), model.params.size() * 4),
            json_field(summary, "weights_sha256"));

  // a run started from it begins from exactly those weights
  const std::string b = lz::test::test_dir("export-b");
  const auto r = run_lazarus(short_run_args(b) + " --set run.steps=1 --set model.init_from=" + out, b);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json_field(read_file(b + "/summary.json"), "initial_weights_sha256"),
            json_field(summary, "weights_sha256"));

  // a file of another shape is refused, naming the keys to change
  const std::string c = lz::test::test_dir("export-c");
  const auto bad = run_lazarus(short_run_args(c) + " --set model.layers=2 --set model.init_from=" + out, c);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("model.init_from"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("layers"), std::string::npos) << bad.output;
}

TEST(lazarus_run, invalid_spec_is_rejected_before_anything_starts) {
  const std::string dir = lz::test::test_dir("bad-spec");
  const auto r = run_lazarus("run --state-dir " + dir + "/state --set model.heads=5"
                             " --set optimizer.lrr=1 --set data.slots=0",
                             dir);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.heads"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("optimizer.lr"), std::string::npos) << r.output;  // the suggestion
  EXPECT_NE(r.output.find("data.slots"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/state")) << "nothing may start";
}

TEST(lazarus_run, corrupt_shard_is_named_in_the_error) {
  const std::string dir = lz::test::test_dir("bad-shard");
  {
    std::ofstream f(dir + "/train_000.bin", std::ios::binary);
    f << "this is not a token shard, it is text that happens to be long enough to be read";
  }
  const auto r = run_lazarus("run --no-progress --state-dir " + dir + "/state --set data.train_shards=" +
                                 dir + "/train_*.bin",
                             dir);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(dir + "/train_000.bin"), std::string::npos) << r.output;
}

}  // namespace
