// shard_format.hpp: one rank's shard of one checkpoint, as a file.
//
// Layout:
//   bytes 0..7     magic "LZSHARD\0"
//   bytes 8..11    format version (uint32, little-endian)
//   bytes 12..15   header length H in bytes (uint32)
//   bytes 16..23   xxh3-64 of the header bytes
//   bytes 24..24+H the header: a Cap'n Proto message (checkpoint/shard.capnp), flat
//   then, from the next 4096-byte boundary, each tensor's raw little-endian bytes, each
//   starting on a 4096-byte boundary (so a reader can mmap them).
// Every tensor carries an xxh3-64 of all its bytes and one per chunk of chunk_bytes, so a
// reader that needs only part of a tensor (resharding) verifies just the chunks it reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/reshard.hpp"
#include "config/error.hpp"

namespace lz::checkpoint {

inline constexpr uint32_t k_shard_format_version = 1;

// A shard failed its checksum or is cut short: names the file and the tensor.
class corrupt_shard : public format_error {
public:
  corrupt_shard(const std::string& message, const char* file, int line, std::string path,
                std::string tensor)
    : format_error(message, file, line), path_(std::move(path)), tensor_(std::move(tensor)) {}
  const std::string& path() const { return path_; }
  const std::string& tensor() const { return tensor_; }

private:
  std::string path_;
  std::string tensor_;
};

// What a shard says about itself.
struct shard_meta {
  std::string run_id;
  int64_t step = 0;             // optimizer steps completed when the shard was taken
  int64_t generation = 0;
  int32_t world_size = 1;       // ranks at save
  int32_t rank = 0;             // this shard's rank at save
  int64_t flat_total = 0;       // elements of each full flat vector (the parameter count)
  flat_range range;             // the elements of each flat vector this shard holds
  uint64_t data_seed = 0;       // data plan seed; the data position is `step`
  std::vector<uint64_t> rng_state;  // any other generator state to restore (may be empty)
  std::string model;            // the model shape, e.g. "gpt2 L4 C128 NH4 V256 Vp256 T256"
};

// A tensor to write: `count` fp32 values (they cover meta.range of a flat vector).
struct tensor_source {
  std::string name;             // "params", "adam_m", "adam_v"
  const float* data = nullptr;
  int64_t count = 0;
};

struct tensor_entry {
  std::string name;
  std::string dtype = "f32";
  uint64_t offset = 0;          // from the start of the file, 4096-aligned
  uint64_t bytes = 0;
  uint64_t xxh3 = 0;            // of all `bytes`
  uint64_t chunk_bytes = 0;     // chunk size for chunk_xxh3 (the last chunk may be shorter)
  std::vector<uint64_t> chunk_xxh3;
};

struct shard_info {
  shard_meta meta;
  std::vector<tensor_entry> tensors;
  uint64_t file_bytes = 0;
  uint64_t header_xxh3 = 0;
};

// Writes the shard durably: PATH.tmp (tensors hashed chunk by chunk as they are written,
// the header last), fsync, rename, fsync of the directory. Fault points (fault_hook.hpp),
// each with meta.step: "shard.before_write", "shard.mid_write" (the first tensor written,
// the header not), "shard.before_fsync", "shard.before_rename",
// "shard.after_rename"; "shard.write" with action enospc fails the write with ENOSPC.
// Throws lz::io_error (ENOSPC named as a full disk) and removes PATH.tmp on failure.
shard_info write_shard(const std::string& path, const shard_meta& meta,
                       const std::vector<tensor_source>& tensors,
                       uint64_t chunk_bytes = 4u << 20);

class shard_reader {
public:
  // Opens the file and reads and validates its header (magic, version, header checksum,
  // tensor table inside the file). Throws format_error / corrupt_shard naming the file.
  explicit shard_reader(const std::string& path);
  ~shard_reader();
  shard_reader(const shard_reader&) = delete;
  shard_reader& operator=(const shard_reader&) = delete;

  const shard_info& info() const { return info_; }
  const std::string& path() const { return path_; }

  // Reads flat elements [range) (inside meta.range) of tensor `name` into out (range.size()
  // floats), reading only the chunks that hold them and verifying each chunk's checksum.
  void read_range(const std::string& name, flat_range range, float* out);
  // Re-reads every tensor, checking every chunk and whole-tensor checksum.
  void verify_all();

private:
  std::string path_;
  int fd_ = -1;
  shard_info info_;
};

}  // namespace lz::checkpoint
