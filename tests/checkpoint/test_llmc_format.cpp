// llm.c's model file: round trip, and each kind of bad file refused with its reason.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/llmc_format.hpp"
#include "config/error.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using lz::checkpoint::llmc_header;
using lz::checkpoint::read_llmc_model;
using lz::checkpoint::write_llmc_model;

class llmc_format : public ::testing::Test {
protected:
  std::string path(const std::string& name) const { return tmp_.file(name); }

  // Writes a valid file, then lets the caller damage int32 `index` of the header or cut it.
  std::string damaged(const std::string& name, int index, int32_t value, int64_t cut_bytes = 0) {
    const std::string p = path(name);
    std::vector<float> params(static_cast<size_t>(lz::checkpoint::llmc_param_count(header_)), 0.5f);
    write_llmc_model(p, header_, params.data(), static_cast<int64_t>(params.size()));
    if (index >= 0) {
      std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(index * 4);
      f.write(reinterpret_cast<const char*>(&value), 4);
    }
    if (cut_bytes > 0) {
      std::filesystem::resize_file(p, std::filesystem::file_size(p) - static_cast<uintmax_t>(cut_bytes));
    }
    return p;
  }

  std::string error_of(const std::string& p) {
    try {
      read_llmc_model(p);
    } catch (const lz::error& e) {
      return e.what();
    }
    return "no error";
  }

  lz::test::temp_dir tmp_{"lz-llmc"};
  llmc_header header_{16, 10, 2, 2, 8, 16};  // maxT V L NH C Vp
};

TEST_F(llmc_format, round_trip_is_bit_exact) {
  const int64_t n = lz::checkpoint::llmc_param_count(header_);
  // llm.c: Vp*C + maxT*C + L*(12*C*C + 13*C) + 2*C
  EXPECT_EQ(n, 16 * 8 + 16 * 8 + 2 * (12 * 64 + 13 * 8) + 2 * 8);
  std::vector<float> params(static_cast<size_t>(n));
  std::iota(params.begin(), params.end(), -3.25f);
  params[5] = -0.0f;
  write_llmc_model(path("m.bin"), header_, params.data(), n);
  EXPECT_EQ(std::filesystem::file_size(path("m.bin")), static_cast<uintmax_t>(1024 + 4 * n));
  EXPECT_FALSE(std::filesystem::exists(path("m.bin.tmp")));
  const auto m = read_llmc_model(path("m.bin"));
  EXPECT_EQ(m.header, header_);
  ASSERT_EQ(m.params.size(), params.size());
  EXPECT_EQ(0, std::memcmp(m.params.data(), params.data(), params.size() * 4));
}

TEST_F(llmc_format, token_shard_magic_is_recognised_as_the_wrong_kind_of_file) {
  const std::string e = error_of(damaged("a.bin", 0, 20240520));
  EXPECT_NE(e.find("a.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("token shard"), std::string::npos) << e;
}

TEST_F(llmc_format, bf16_version_is_refused_with_a_hint) {
  const std::string e = error_of(damaged("b.bin", 1, 5));
  EXPECT_NE(e.find("version 5"), std::string::npos) << e;
  EXPECT_NE(e.find("bf16"), std::string::npos) << e;
}

TEST_F(llmc_format, truncated_file_is_refused_with_both_sizes) {
  const std::string e = error_of(damaged("c.bin", -1, 0, 12));
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST_F(llmc_format, impossible_shape_is_refused) {
  const std::string e = error_of(damaged("d.bin", 5, 3));  // NH 3 does not divide C 8
  EXPECT_NE(e.find("impossible shape"), std::string::npos) << e;
}

TEST_F(llmc_format, missing_and_short_files_are_refused) {
  EXPECT_NE(error_of(path("nope.bin")).find("cannot open"), std::string::npos);
  std::ofstream(path("short.bin")) << "tiny";
  EXPECT_NE(error_of(path("short.bin")).find("shorter"), std::string::npos);
}

TEST_F(llmc_format, writing_into_a_missing_directory_fails_cleanly) {
  std::vector<float> params(static_cast<size_t>(lz::checkpoint::llmc_param_count(header_)));
  EXPECT_THROW(write_llmc_model(path("no/such/dir/m.bin"), header_, params.data(),
                                static_cast<int64_t>(params.size())),
               lz::io_error);
}

}  // namespace
