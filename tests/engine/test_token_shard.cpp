// test_token_shard.cpp: llm.c token shards round-trip, and every malformed shard is
// rejected with a message naming the file and the problem.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/error.hpp"
#include "tests/support/temp_dir.hpp"
#include "engine/token_shard.hpp"

namespace lz::engine {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the GoogleTest temp dir, removed with the fixture.
class token_shard_test : public ::testing::Test {
protected:
  std::string path(const std::string& name) const { return tmp_.file(name); }

  // Writes a shard byte by byte: header ints (rest of the 256 zero), then raw token bytes.
  std::string write_raw(const std::string& name, std::vector<int32_t> header_ints,
                        const std::vector<uint16_t>& tokens, int64_t header_bytes = 1024,
                        int64_t extra_bytes = 0) const {
    std::vector<unsigned char> bytes(static_cast<size_t>(header_bytes), 0);
    for (size_t i = 0; i < header_ints.size() && 4 * i + 3 < bytes.size(); ++i) {
      auto v = static_cast<uint32_t>(header_ints[i]);
      for (int k = 0; k < 4; ++k) bytes[4 * i + k] = static_cast<unsigned char>(v >> (8 * k));
    }
    for (uint16_t t : tokens) {
      bytes.push_back(static_cast<unsigned char>(t & 0xff));
      bytes.push_back(static_cast<unsigned char>(t >> 8));
    }
    bytes.insert(bytes.end(), static_cast<size_t>(extra_bytes), 0x5a);
    std::string p = path(name);
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

  // The data_error message of reading `p`, or a test failure when it does not throw.
  static std::string read_error(const std::string& p, int64_t vocab_size = 256) {
    try {
      read_token_shard(p, vocab_size);
    } catch (const lz::data_error& e) {
      return e.what();
    }
    ADD_FAILURE() << "reading " << p << " did not throw lz::data_error";
    return {};
  }

  lz::test::temp_dir tmp_{"lz-token-shard"};
};

TEST_F(token_shard_test, written_shard_reads_back_identical) {
  std::vector<uint16_t> tokens;
  for (int i = 0; i < 5000; ++i) tokens.push_back(static_cast<uint16_t>((i * 7919) % 50257));
  const std::string p = path("train_000.bin");
  write_token_shard(p, tokens);
  EXPECT_EQ(read_token_shard(p, 50257), tokens);
  EXPECT_EQ(fs::file_size(p), 1024u + 2u * tokens.size());
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

TEST_F(token_shard_test, empty_shard_round_trips) {
  const std::string p = path("empty.bin");
  write_token_shard(p, {});
  EXPECT_TRUE(read_token_shard(p, 256).empty());
}

TEST_F(token_shard_test, shard_layout_matches_llm_c) {
  const std::string p = path("layout.bin");
  write_token_shard(p, {0x0102, 0xfffe});
  std::ifstream in(p, std::ios::binary);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_EQ(bytes.size(), 1028u);
  auto int_at = [&](size_t i) {
    return int32_t(uint32_t(bytes[4 * i]) | uint32_t(bytes[4 * i + 1]) << 8 |
                   uint32_t(bytes[4 * i + 2]) << 16 | uint32_t(bytes[4 * i + 3]) << 24);
  };
  EXPECT_EQ(int_at(0), 20240520);
  EXPECT_EQ(int_at(1), 1);
  EXPECT_EQ(int_at(2), 2);
  for (size_t i = 3; i < 256; ++i) EXPECT_EQ(int_at(i), 0) << "header int " << i;
  EXPECT_EQ(bytes[1024], 0x02);  // little-endian tokens
  EXPECT_EQ(bytes[1025], 0x01);
  EXPECT_EQ(bytes[1026], 0xfe);
  EXPECT_EQ(bytes[1027], 0xff);
}

TEST_F(token_shard_test, rewriting_a_shard_replaces_it) {
  const std::string p = path("s.bin");
  write_token_shard(p, {1, 2, 3, 4});
  write_token_shard(p, {9});
  EXPECT_EQ(read_token_shard(p, 256), (std::vector<uint16_t>{9}));
}

TEST_F(token_shard_test, shard_with_wrong_magic_is_rejected_naming_file) {
  const std::string p = write_raw("magic.bin", {12345, 1, 3}, {1, 2, 3});
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("12345"), std::string::npos) << msg;
  EXPECT_NE(msg.find("20240520"), std::string::npos) << msg;
  EXPECT_NE(msg.find("llm.c token shard"), std::string::npos) << msg;
  EXPECT_NE(msg.find("20240326"), std::string::npos) << msg;
}

TEST_F(token_shard_test, model_checkpoint_given_as_shard_is_called_a_checkpoint) {
  const std::string p = write_raw("gpt2_124M.bin", {20240326, 3, 1024}, {});
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("checkpoint"), std::string::npos) << msg;
}

TEST_F(token_shard_test, shard_with_wrong_version_is_rejected_naming_file) {
  const std::string p = write_raw("version.bin", {20240520, 2, 3}, {1, 2, 3});
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("version 2"), std::string::npos) << msg;
}

TEST_F(token_shard_test, file_shorter_than_header_is_rejected_naming_file) {
  const std::string p = write_raw("short.bin", {20240520, 1, 0}, {}, 100);
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("100 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("header"), std::string::npos) << msg;
}

TEST_F(token_shard_test, truncated_token_data_is_rejected_with_both_sizes) {
  const std::string p = write_raw("trunc.bin", {20240520, 1, 10}, {1, 2, 3, 4});
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("10 tokens (20 bytes)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(token_shard_test, trailing_bytes_after_tokens_are_rejected_with_both_sizes) {
  const std::string p = write_raw("trail.bin", {20240520, 1, 2}, {1, 2}, 1024, 3);
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("2 tokens (4 bytes)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("7 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("trailing"), std::string::npos) << msg;
}

TEST_F(token_shard_test, negative_token_count_is_rejected) {
  const std::string p = write_raw("neg.bin", {20240520, 1, -4}, {});
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("-4 tokens"), std::string::npos) << msg;
}

TEST_F(token_shard_test, token_outside_vocab_is_rejected_with_position_and_value) {
  const std::string p = write_raw("vocab.bin", {20240520, 1, 4}, {10, 255, 300, 7});
  const std::string msg = read_error(p, 256);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("token 300"), std::string::npos) << msg;
  EXPECT_NE(msg.find("position 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.vocab_size"), std::string::npos) << msg;
  EXPECT_EQ(read_token_shard(p, 301).size(), 4u);
}

TEST_F(token_shard_test, missing_shard_is_rejected_naming_file) {
  const std::string p = path("nope.bin");
  const std::string msg = read_error(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST_F(token_shard_test, writing_into_missing_directory_is_an_io_error) {
  EXPECT_THROW(write_token_shard(path("no/such/dir/x.bin"), {1, 2}), lz::io_error);
}

TEST_F(token_shard_test, shard_glob_is_sorted) {
  for (const char* name : {"train_002.bin", "train_000.bin", "train_001.bin", "val_000.bin"})
    write_token_shard(path(name), {1});
  const auto files = expand_shard_glob(path("train_*.bin"));
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], path("train_000.bin"));
  EXPECT_EQ(files[1], path("train_001.bin"));
  EXPECT_EQ(files[2], path("train_002.bin"));
}

TEST_F(token_shard_test, shard_glob_without_match_names_pattern_and_prepare) {
  const std::string pattern = path("train_*.bin");
  try {
    expand_shard_glob(pattern);
    FAIL() << "no throw";
  } catch (const lz::data_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(pattern), std::string::npos) << msg;
    EXPECT_NE(msg.find("lazarus data prepare"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace lz::engine
