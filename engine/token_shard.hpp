// token_shard.hpp: llm.c token shards (.bin), read with validation and written atomically.
//
// Layout (little-endian): a header of 256 int32 -- [0] magic 20240520, [1] version 1,
// [2] token count N, the rest zero -- then N uint16 tokens. A shard prepared by llm.c's
// data scripts reads here as it is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lz::engine {

inline constexpr int32_t token_shard_magic = 20240520;
inline constexpr int32_t token_shard_version = 1;
inline constexpr int64_t token_shard_header_ints = 256;
inline constexpr int64_t token_shard_header_bytes = token_shard_header_ints * 4;  // 1024

// Reads every token of the shard at `path`; each token must be < vocab_size.
// Throws lz::data_error naming the file for a missing/unreadable file, a short header, a
// wrong magic or version, a token count that disagrees with the file size, or a token
// outside the vocabulary.
std::vector<uint16_t> read_token_shard(const std::string& path, int64_t vocab_size);

// Writes `tokens` as a shard: to path + ".tmp", fsync, rename over `path`, fsync the
// directory, so a crash leaves either the old file or the complete new one.
// Throws lz::io_error (with strerror) when any step fails.
void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens);

// The files matching a glob(3) pattern, sorted by name.
// Throws lz::data_error naming the pattern when nothing matches.
std::vector<std::string> expand_shard_glob(const std::string& pattern);

}  // namespace lz::engine
