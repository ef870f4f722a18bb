// file_io.hpp: durable writes. A file counts as written only after its bytes and its
// directory entry are on disk: write to PATH.tmp, fsync, rename over PATH, fsync the
// directory. Every failure is an lz::io_error naming the file and the system error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <initializer_list>
#include <string>

namespace lz::checkpoint {

// One buffer to write at the end of a durable file, in order.
struct byte_span {
  const void* data;
  size_t size;
};

void write_file_durably(const std::string& path, std::initializer_list<byte_span> parts);

// Throws an io_error saying the disk is full when the file system holding `path` has fewer
// than `bytes` free for `what` (RocksDB must not meet a full disk mid-write: its Debian
// build asserts on some of those paths instead of returning an error).
void require_free_space(const std::string& path, uint64_t bytes, std::string_view what);
void fsync_directory(const std::string& dir);

// The current UTC time for a file name: "20261124T153000Z".
std::string utc_file_stamp();

}  // namespace lz::checkpoint
