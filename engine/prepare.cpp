// prepare.cpp: text files -> byte-level tokens -> train / val token shards.
#include "engine/prepare.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "config/error.hpp"        // LZ_THROW, lz::data_error, lz::io_error, lz::spec_error
#include "engine/token_shard.hpp"  // write_token_shard
#include "engine/tokenizer.hpp"    // byte_tokenizer

namespace lz::engine {
namespace {

// The whole content of a text file.
std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    LZ_THROW(lz::data_error, "data prepare: input {} is a directory, expected a text file",
             path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    LZ_THROW(lz::data_error, "data prepare: cannot open input {}: {}", path,
             std::strerror(errno));
  std::string text;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int saved_errno = errno;
  std::fclose(f);
  if (failed)
    LZ_THROW(lz::data_error, "data prepare: cannot read input {}: {}", path,
             std::strerror(saved_errno));
  return text;
}

std::string shard_name(const std::string& dir, const char* split, int64_t index) {
  return (std::filesystem::path(dir) / fmt::format("{}_{:03d}.bin", split, index)).string();
}

// Whether `name` is train_ followed by at least three digits and .bin.
bool is_train_shard_name(const std::string& name) {
  const std::string prefix = "train_", suffix = ".bin";
  if (name.size() < prefix.size() + 3 + suffix.size()) return false;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  const auto digits_end = name.end() - static_cast<std::ptrdiff_t>(suffix.size());
  return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), digits_end,
                     [](char c) { return c >= '0' && c <= '9'; });
}

// Deletes train_NNN.bin files in `dir` that this run did not write.
void remove_stale_train_shards(const std::string& dir, const std::set<std::string>& keep) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_train_shard_name(name) || keep.count(entry.path().string()) > 0)
      continue;
    std::error_code rm_ec;
    std::filesystem::remove(entry.path(), rm_ec);
    if (rm_ec)
      LZ_THROW(lz::io_error, "data prepare: cannot remove stale shard {}: {}",
               entry.path().string(), rm_ec.message());
  }
  if (ec)
    LZ_THROW(lz::io_error, "data prepare: cannot list {}: {}", dir, ec.message());
}

}  // namespace

prepare_result prepare_text_shards(const std::vector<std::string>& inputs,
                                   const std::string& output_dir, double val_fraction,
                                   int64_t shard_tokens) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    LZ_THROW(lz::spec_error, "data prepare: validation fraction {} must be in (0, 1)",
             val_fraction);
  if (shard_tokens < 1)
    LZ_THROW(lz::spec_error, "data prepare: tokens per shard {} must be at least 1",
             shard_tokens);
  if (inputs.empty())
    LZ_THROW(lz::data_error, "data prepare: no input text files given");

  byte_tokenizer tokenizer;
  std::vector<uint16_t> tokens;  // (N,) every file, '\n' between files
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string text = read_text_file(inputs[i]);
    if (text.empty())
      LZ_THROW(lz::data_error, "data prepare: input {} is empty", inputs[i]);
    if (i > 0) tokens.push_back(static_cast<uint16_t>('\n'));
    const std::vector<uint16_t> file_tokens = tokenizer.encode(text);
    tokens.insert(tokens.end(), file_tokens.begin(), file_tokens.end());
  }

  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t val_tokens =
      std::max<int64_t>(2, static_cast<int64_t>(static_cast<double>(n) * val_fraction));
  const int64_t train_tokens = n - val_tokens;
  if (train_tokens < 2)
    LZ_THROW(lz::data_error, "data prepare: {} tokens of text are too few to split into a "
             "training set and a validation set of {} tokens; give more text", n,
             val_tokens);

  std::error_code ec;
  std::filesystem::create_directories(output_dir, ec);
  if (ec)
    LZ_THROW(lz::io_error, "data prepare: cannot create output directory {}: {}",
             output_dir, ec.message());

  prepare_result result;
  result.train_tokens = train_tokens;
  result.val_tokens = val_tokens;
  std::set<std::string> written;
  for (int64_t begin = 0, index = 0; begin < train_tokens; begin += shard_tokens, ++index) {
    const int64_t end = std::min(train_tokens, begin + shard_tokens);
    const std::vector<uint16_t> shard(tokens.begin() + begin, tokens.begin() + end);
    result.files.push_back(shard_name(output_dir, "train", index));
    write_token_shard(result.files.back(), shard);
    written.insert(result.files.back());
  }
  const std::vector<uint16_t> val(tokens.begin() + train_tokens, tokens.end());
  result.files.push_back(shard_name(output_dir, "val", 0));
  write_token_shard(result.files.back(), val);
  remove_stale_train_shards(output_dir, written);
  return result;
}

}  // namespace lz::engine
