// test_prepare.cpp: text files -> shards -> dataset -> batches, losing and inventing
// nothing on the way.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/error.hpp"
#include "tests/support/temp_dir.hpp"
#include "engine/dataset.hpp"
#include "engine/prepare.hpp"
#include "engine/token_shard.hpp"
#include "engine/tokenizer.hpp"

namespace lz::engine {
namespace {

namespace fs = std::filesystem;

class prepare_test : public ::testing::Test {
protected:
  std::string path(const std::string& name) const { return tmp_.file(name); }
  std::string write_text(const std::string& name, const std::string& text) const {
    std::string p = path(name);
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  static std::string decode(const std::vector<uint16_t>& tokens) {
    return decode_bytes(tokens.data(), tokens.size());
  }

  lz::test::temp_dir tmp_{"lz-prepare"};
};

// A text of `n` bytes covering every byte value, so no byte is mangled on the way.
std::string every_byte_text(size_t n, int salt) {
  std::string text(n, '\0');
  for (size_t i = 0; i < n; ++i) text[i] = static_cast<char>((i * 31 + salt) % 256);
  return text;
}

TEST(byte_tokenizer_for_prepare, encode_then_decode_returns_every_byte) {
  const std::string text = every_byte_text(1000, 5);
  const auto tokens = encode_bytes(text);
  ASSERT_EQ(tokens.size(), text.size());
  EXPECT_EQ(tokens[0], 5);
  EXPECT_EQ(decode_bytes(tokens.data(), tokens.size()), text);
  EXPECT_EQ(byte_tokenizer{}.vocab_size(), 256);
  const uint16_t bad[] = {65, 256};
  EXPECT_THROW(decode_bytes(bad, 2), lz::data_error);
}

TEST_F(prepare_test, two_files_become_train_and_val_that_decode_to_the_text) {
  const std::string a = "In the beginning was the text.\nAnd the text was bytes.";
  const std::string b = every_byte_text(300, 11);
  const auto result = prepare_text_shards({write_text("a.txt", a), write_text("b.txt", b)},
                                          path("out/kjv"), 0.1);
  const std::string joined = a + "\n" + b;
  const auto n = static_cast<int64_t>(joined.size());
  EXPECT_EQ(result.val_tokens, n / 10);
  EXPECT_EQ(result.train_tokens, n - n / 10);
  ASSERT_EQ(result.files.size(), 2u);
  EXPECT_EQ(result.files[0], path("out/kjv/train_000.bin"));
  EXPECT_EQ(result.files[1], path("out/kjv/val_000.bin"));

  const auto train = read_token_shard(path("out/kjv/train_000.bin"), 256);
  const auto val = read_token_shard(path("out/kjv/val_000.bin"), 256);
  EXPECT_EQ(static_cast<int64_t>(train.size()), result.train_tokens);
  EXPECT_EQ(static_cast<int64_t>(val.size()), result.val_tokens);
  EXPECT_EQ(decode(train) + decode(val), joined);
  EXPECT_EQ(decode(val), joined.substr(joined.size() - val.size()));  // the LAST tokens
}

TEST_F(prepare_test, large_training_split_is_cut_into_numbered_shards) {
  const std::string text = every_byte_text(1000, 1);
  const auto result = prepare_text_shards({write_text("t.txt", text)}, path("out"), 0.05, 300);
  EXPECT_EQ(result.val_tokens, 50);
  EXPECT_EQ(result.train_tokens, 950);
  const auto train_files = expand_shard_glob(path("out/train_*.bin"));
  ASSERT_EQ(train_files.size(), 4u);  // 300 + 300 + 300 + 50
  std::string decoded;
  for (const auto& f : train_files) {
    const auto shard = read_token_shard(f, 256);
    EXPECT_LE(shard.size(), 300u) << f;
    decoded += decode(shard);
  }
  decoded += decode(read_token_shard(path("out/val_000.bin"), 256));
  EXPECT_EQ(decoded, text);

  // Preparing less data into the same directory leaves no stale shard behind.
  prepare_text_shards({write_text("small.txt", text.substr(0, 400))}, path("out"), 0.05, 300);
  EXPECT_EQ(expand_shard_glob(path("out/train_*.bin")).size(), 2u);
}

TEST_F(prepare_test, tiny_text_still_gets_two_validation_tokens) {
  const auto result = prepare_text_shards({write_text("t.txt", "abcdef")}, path("o"), 0.01);
  EXPECT_EQ(result.val_tokens, 2);
  EXPECT_EQ(result.train_tokens, 4);
  EXPECT_EQ(decode(read_token_shard(path("o/val_000.bin"), 256)), "ef");
}

TEST_F(prepare_test, missing_input_file_is_rejected_naming_it) {
  const std::string missing = path("no_such_corpus.txt");
  try {
    prepare_text_shards({write_text("a.txt", "hello world"), missing}, path("out"));
    FAIL() << "no throw";
  } catch (const lz::data_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path("out/train_000.bin")));
}

TEST_F(prepare_test, empty_input_is_rejected) {
  const std::string empty = write_text("empty.txt", "");
  try {
    prepare_text_shards({empty}, path("out"));
    FAIL() << "no throw";
  } catch (const lz::data_error& e) {
    EXPECT_NE(std::string(e.what()).find(empty), std::string::npos) << e.what();
  }
  EXPECT_THROW(prepare_text_shards({}, path("out")), lz::data_error);
  EXPECT_THROW(prepare_text_shards({write_text("x.txt", "abc")}, path("out")), lz::data_error);
}

TEST_F(prepare_test, prepared_shards_feed_training_batches_that_cover_the_epoch) {
  const std::string text = every_byte_text(2000, 3);
  prepare_text_shards({write_text("t.txt", text)}, path("d"), 0.1, 700);
  const auto train = token_dataset::from_glob(path("d/train_*.bin"), 256);
  ASSERT_EQ(train.num_tokens(), 1800);
  EXPECT_EQ(decode(train.tokens()), text.substr(0, 1800));

  const int64_t T = 16, slots = 2, B = 3;
  train_batcher batcher(train, 5, T, slots, B);
  const int64_t W = batcher.plan().windows_per_epoch();
  ASSERT_EQ(W, (1800 - 1) / T);
  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::set<int64_t> seen;  // windows of the first epoch
  for (int64_t step = 0; step * slots * B < W; ++step) {
    for (int64_t slot = 0; slot < slots; ++slot) {
      batcher.fill(step, slot, inputs.data(), targets.data());
      for (int64_t b = 0; b < B; ++b) {
        const int64_t g = (step * slots + slot) * B + b;
        const int64_t w = batcher.plan().window(step, slot, b);
        for (int64_t t = 0; t < T; ++t) {
          ASSERT_EQ(inputs[b * T + t], train.tokens()[w * T + t]);
          ASSERT_EQ(targets[b * T + t], train.tokens()[w * T + t + 1]);  // next token
        }
        if (g < W) {
          EXPECT_TRUE(seen.insert(w).second) << "window " << w;
        }
      }
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), W);
}

TEST_F(prepare_test, validation_batches_walk_windows_in_order_and_wrap) {
  const std::string text = every_byte_text(1000, 9);
  prepare_text_shards({write_text("t.txt", text)}, path("d"), 0.2);  // 200 val tokens
  const token_dataset val({path("d/val_000.bin")}, 256);
  const int64_t T = 32, B = 4;  // (200 - 1) / 32 = 6 windows
  std::vector<int32_t> inputs(B * T), targets(B * T);
  fill_val(val, 1, B, T, inputs.data(), targets.data());  // windows 4, 5, 0, 1
  const int64_t expected_windows[] = {4, 5, 0, 1};
  for (int64_t b = 0; b < B; ++b) {
    const int64_t w = expected_windows[b];
    for (int64_t t = 0; t < T; ++t) {
      ASSERT_EQ(inputs[b * T + t], val.tokens()[w * T + t]) << "row " << b;
      ASSERT_EQ(targets[b * T + t], val.tokens()[w * T + t + 1]) << "row " << b;
    }
  }
  EXPECT_THROW(fill_val(val, 0, 1, 200, inputs.data(), targets.data()), lz::data_error);
}

}  // namespace
}  // namespace lz::engine
