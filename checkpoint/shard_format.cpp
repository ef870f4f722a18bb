// The shard file: writer and reader. Both live here because they share the layout
// constants and the header encoding; the reader's checks mirror what the writer promises.
#include "checkpoint/shard_format.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <xxhash.h>

#include "checkpoint/fault_hook.hpp"
#include "checkpoint/file_io.hpp"
#include "checkpoint/shard.capnp.h"

// corrupt_shard carries the path and tensor besides the message, so LZ_THROW cannot build it.
#define LZ_THROW_CORRUPT(path, tensor, ...) \
  throw corrupt_shard(fmt::format(__VA_ARGS__), __FILE__, __LINE__, (path), (tensor))

namespace lz::checkpoint {

namespace {

constexpr unsigned char k_magic[8] = {'L', 'Z', 'S', 'H', 'A', 'R', 'D', '\0'};
constexpr uint64_t k_prefix_bytes = 24;  // magic, version, header length, header xxh3
constexpr uint64_t k_align = 4096;       // tensors start on page boundaries (mmap)
constexpr uint64_t k_io_bytes = 16u << 20;           // bytes per write / pread call
constexpr uint64_t k_max_chunk_bytes = uint64_t{1} << 40;  // keeps chunk arithmetic exact
constexpr const char* k_header_name = "<header>";
constexpr const char* k_fallback =
    "the loader falls back to the previous committed checkpoint; run `lazarus ckpt verify` "
    "to list the damaged shards";

uint64_t round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

void put_le(unsigned char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

using xxh3_state = std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)>;

xxh3_state make_xxh3_state() {
  xxh3_state s(XXH3_createState(), &XXH3_freeState);
  LZ_CHECK(s != nullptr, "XXH3_createState failed");
  XXH3_64bits_reset(s.get());
  return s;
}

capnp::Text::Reader text(const std::string& s) { return {s.c_str(), s.size()}; }
std::string str(capnp::Text::Reader t) { return {t.cStr(), t.size()}; }

// ---------------------------------------------------------------------------------------
// Writing

// The table entry of one tensor before its bytes are hashed: sizes and chunk count only
// (the header's size depends on those alone).
tensor_entry plan_tensor(const tensor_source& t, uint64_t chunk_bytes) {
  tensor_entry e;
  e.name = t.name;
  e.bytes = static_cast<uint64_t>(t.count) * sizeof(float);
  e.chunk_bytes = chunk_bytes;
  e.chunk_xxh3.assign((e.bytes + chunk_bytes - 1) / chunk_bytes, 0);
  return e;
}

void fill_header(schema::ShardHeader::Builder h, const shard_info& info) {
  const shard_meta& m = info.meta;
  h.setFormatVersion(k_shard_format_version);
  h.setRunId(text(m.run_id));
  h.setStep(m.step);
  h.setGeneration(m.generation);
  h.setWorldSize(m.world_size);
  h.setRank(m.rank);
  h.setFlatTotal(m.flat_total);
  h.setRangeBegin(m.range.begin);
  h.setRangeEnd(m.range.end);
  h.setDataSeed(m.data_seed);
  auto rng = h.initRngState(static_cast<unsigned>(m.rng_state.size()));
  for (unsigned i = 0; i < rng.size(); ++i) rng.set(i, m.rng_state[i]);
  h.setModel(text(m.model));
  auto tensors = h.initTensors(static_cast<unsigned>(info.tensors.size()));
  for (unsigned i = 0; i < tensors.size(); ++i) {
    const tensor_entry& e = info.tensors[i];
    auto t = tensors[i];
    t.setName(text(e.name));
    t.setDtype(text(e.dtype));
    t.setOffset(e.offset);
    t.setBytes(e.bytes);
    t.setXxh3(e.xxh3);
    t.setChunkBytes(e.chunk_bytes);
    auto chunks = t.initChunkXxh3(static_cast<unsigned>(e.chunk_xxh3.size()));
    for (unsigned c = 0; c < chunks.size(); ++c) chunks.set(c, e.chunk_xxh3[c]);
  }
  h.setFileBytes(info.file_bytes);
}

// Fills in what is known only after the tensors are written: offsets, checksums, the file
// size. Every field is fixed-width and the lists already have their lengths, so the
// message does not grow.
void set_layout_and_checksums(schema::ShardHeader::Builder h, const shard_info& info) {
  auto tensors = h.getTensors();
  for (unsigned i = 0; i < tensors.size(); ++i) {
    const tensor_entry& e = info.tensors[i];
    auto t = tensors[i];
    t.setOffset(e.offset);
    t.setXxh3(e.xxh3);
    auto chunks = t.getChunkXxh3();
    for (unsigned c = 0; c < chunks.size(); ++c) chunks.set(c, e.chunk_xxh3[c]);
  }
  h.setFileBytes(info.file_bytes);
}

// PATH.tmp while it is written: removed on every way out except a completed rename.
class tmp_file {
public:
  explicit tmp_file(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      LZ_THROW(io_error, "cannot create shard '{}': {}; check that the directory exists and "
               "is writable", path_, std::strerror(errno));
    }
  }
  ~tmp_file() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());
  }
  tmp_file(const tmp_file&) = delete;
  tmp_file& operator=(const tmp_file&) = delete;

  // The next write fails with ENOSPC before touching the disk (fault injection), so the
  // injected failure runs through the same path as a real full disk.
  void fail_next_write_with_enospc() { inject_enospc_ = true; }

  // Writes at an absolute offset (the header, last, into the space kept for it).
  void write_at(const void* data, uint64_t size, uint64_t offset) {
    if (inject_enospc_) {
      inject_enospc_ = false;
      fail("write to", ENOSPC);
    }
    const auto* p = static_cast<const unsigned char*>(data);
    while (size > 0) {
      const ssize_t n = ::pwrite(fd_, p, std::min(size, k_io_bytes), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("write to", errno);
      if (n == 0) fail("write to", EIO);
      p += n;
      offset += static_cast<uint64_t>(n);
      size -= static_cast<uint64_t>(n);
    }
  }

  void sync() {
    if (::fsync(fd_) != 0) fail("fsync of", errno);
  }

  void close_and_rename(const std::string& final_path) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close of", errno);
    if (::rename(path_.c_str(), final_path.c_str()) != 0) fail("rename to", errno);
    renamed_ = true;
  }

private:
  [[noreturn]] void fail(const char* what, int err) {
    LZ_THROW(io_error, "{} '{}' failed: {}{}", what, path_, std::strerror(err),
             err == ENOSPC ? " (the disk is full: free space and save again; the previous "
                             "committed checkpoint stays the latest)"
                           : "");
  }

  std::string path_;
  int fd_ = -1;
  bool inject_enospc_ = false;
  bool renamed_ = false;
};

}  // namespace

shard_info write_shard(const std::string& path, const shard_meta& meta,
                       const std::vector<tensor_source>& tensors, uint64_t chunk_bytes) {
  LZ_CHECK(chunk_bytes > 0 && chunk_bytes <= k_max_chunk_bytes, "chunk_bytes {}", chunk_bytes);
  LZ_CHECK(meta.world_size >= 1 && meta.rank >= 0 && meta.rank < meta.world_size,
           "rank {} of {}", meta.rank, meta.world_size);
  LZ_CHECK(meta.range.begin >= 0 && meta.range.begin <= meta.range.end &&
               meta.range.end <= meta.flat_total,
           "range [{}, {}) of {}", meta.range.begin, meta.range.end, meta.flat_total);
  shard_info info;
  info.meta = meta;
  for (const tensor_source& t : tensors) {
    LZ_CHECK(t.count == meta.range.size(), "tensor '{}' has {} values for a range of {}", t.name,
             t.count, meta.range.size());
    LZ_CHECK(t.data != nullptr || t.count == 0, "tensor '{}' has no data", t.name);
    for (const tensor_entry& e : info.tensors) LZ_CHECK(e.name != t.name, "'{}' twice", t.name);
    info.tensors.push_back(plan_tensor(t, chunk_bytes));
  }

  // The header records where each tensor starts, and the tensors start after the header.
  // Offsets, checksums and list lengths are fixed-width, so the header's size is known
  // before the bytes are hashed: the tensors are hashed chunk by chunk as they are written
  // (each chunk is hashed while it is in cache, and the disk works while later chunks are
  // hashed), and the header goes last into the space kept for it.
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<schema::ShardHeader>();
  fill_header(root, info);
  const uint64_t header_bytes = capnp::computeSerializedSizeInWords(message) * sizeof(capnp::word);
  if (header_bytes > std::numeric_limits<uint32_t>::max()) {
    LZ_THROW(format_error, "the header of shard '{}' would be {} bytes, over the format's 4 GiB: "
             "raise chunk_bytes (now {})", path, header_bytes, chunk_bytes);
  }
  uint64_t cursor = k_prefix_bytes + header_bytes;
  for (tensor_entry& e : info.tensors) {
    e.offset = round_up(cursor, k_align);
    cursor = e.offset + e.bytes;
  }
  info.file_bytes = cursor;
  const uint64_t block_bytes =
      info.tensors.empty() ? k_prefix_bytes + header_bytes : info.tensors.front().offset;

  const std::string tmp_path = path + ".tmp";
  tmp_file out(tmp_path);
  // A kill here leaves an empty PATH.tmp behind, the debris a loader must ignore.
  fault_point("shard.before_write", meta.step, meta.rank);
  if (fault_enospc("shard.write", meta.step, meta.rank)) out.fail_next_write_with_enospc();
  for (size_t i = 0; i < tensors.size(); ++i) {
    tensor_entry& e = info.tensors[i];
    const auto* bytes = reinterpret_cast<const unsigned char*>(tensors[i].data);
    xxh3_state whole = make_xxh3_state();
    for (uint64_t c = 0; c * chunk_bytes < e.bytes; ++c) {
      const uint64_t begin = c * chunk_bytes;
      const uint64_t n = std::min(chunk_bytes, e.bytes - begin);
      e.chunk_xxh3[c] = XXH3_64bits(bytes + begin, n);
      XXH3_64bits_update(whole.get(), bytes + begin, n);
      // Straight from the caller's memory: no staging copy of a 1.5 GB shard.
      out.write_at(bytes + begin, n, e.offset + begin);
    }
    e.xxh3 = XXH3_64bits_digest(whole.get());
    if (i == 0) fault_point("shard.mid_write", meta.step, meta.rank);
  }

  set_layout_and_checksums(root, info);
  const kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  const kj::ArrayPtr<const kj::byte> header = words.asBytes();
  LZ_CHECK(header.size() == header_bytes, "header grew from {} to {} bytes", header_bytes,
           header.size());
  info.header_xxh3 = XXH3_64bits(header.begin(), header.size());
  std::vector<unsigned char> block(block_bytes, 0);
  std::memcpy(block.data(), k_magic, sizeof(k_magic));
  put_le(block.data() + 8, k_shard_format_version, 4);
  put_le(block.data() + 12, header_bytes, 4);
  put_le(block.data() + 16, info.header_xxh3, 8);
  std::memcpy(block.data() + k_prefix_bytes, header.begin(), header.size());
  out.write_at(block.data(), block.size(), 0);
  fault_point("shard.before_fsync", meta.step, meta.rank);
  out.sync();
  fault_point("shard.before_rename", meta.step, meta.rank);
  out.close_and_rename(path);
  fault_point("shard.after_rename", meta.step, meta.rank);
  fsync_directory(std::filesystem::path(path).parent_path().string());
  return info;
}

// ---------------------------------------------------------------------------------------
// Reading

namespace {

// Reads exactly `size` bytes at `offset`; a file that ends early is a truncated shard.
void pread_exact(int fd, void* out, uint64_t size, uint64_t offset, const std::string& path,
                 const std::string& tensor) {
  auto* p = static_cast<unsigned char*>(out);
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, p + done, std::min(size - done, k_io_bytes),
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      LZ_THROW(io_error, "read of '{}' (tensor '{}', {} bytes at offset {}) failed: {}", path,
               tensor, size, offset, std::strerror(errno));
    }
    if (n == 0) {
      LZ_THROW_CORRUPT(path, tensor, "'{}' ends at byte {} inside tensor '{}' (wanted {} bytes "
                       "at offset {}): the file is truncated; {}", path, offset + done, tensor,
                       size, offset, k_fallback);
    }
    done += static_cast<uint64_t>(n);
  }
}

// Compares a chunk's computed checksum with the stored one.
void check_chunk_hash(const std::string& path, const tensor_entry& t, uint64_t chunk,
                      uint64_t got) {
  if (got != t.chunk_xxh3[chunk]) {
    const uint64_t size = std::min(t.chunk_bytes, t.bytes - chunk * t.chunk_bytes);
    LZ_THROW_CORRUPT(path, t.name, "'{}': tensor '{}' chunk {} (tensor bytes {}..{}, file "
                     "offset {}) fails its checksum (stored {:016x}, computed {:016x}): the "
                     "data is damaged; {}", path, t.name, chunk, chunk * t.chunk_bytes,
                     chunk * t.chunk_bytes + size, t.offset + chunk * t.chunk_bytes,
                     t.chunk_xxh3[chunk], got, k_fallback);
  }
}

void check_chunk(const std::string& path, const tensor_entry& t, uint64_t chunk,
                 const unsigned char* data, uint64_t size) {
  check_chunk_hash(path, t, chunk, XXH3_64bits(data, size));
}

// Reads whole chunks [c0, c1) of tensor t into dst (which holds chunk c0 at offset 0) and
// verifies them. A second thread reads ahead while this one hashes, so a load from a fast
// disk (or the page cache) pays little for its checksums.
void read_whole_chunks(int fd, const std::string& path, const tensor_entry& t, uint64_t c0,
                       uint64_t c1, unsigned char* dst) {
  const uint64_t cb = t.chunk_bytes;
  const uint64_t per_call = std::max<uint64_t>(1, k_io_bytes / cb);
  auto chunk_end = [&](uint64_t c) { return std::min((c + 1) * cb, t.bytes); };
  std::atomic<uint64_t> read_upto{c0};  // chunks [c0, read_upto) are in dst
  std::atomic<bool> stop{false};
  std::exception_ptr read_error;
  std::thread reader([&] {
    try {
      for (uint64_t c = c0; c < c1 && !stop.load(std::memory_order_relaxed);) {
        const uint64_t n = std::min(per_call, c1 - c);
        pread_exact(fd, dst + (c - c0) * cb, chunk_end(c + n - 1) - c * cb, t.offset + c * cb,
                    path, t.name);
        c += n;
        read_upto.store(c, std::memory_order_release);
        read_upto.notify_one();
      }
    } catch (...) {
      read_error = std::current_exception();
    }
    read_upto.store(UINT64_MAX, std::memory_order_release);  // done, or failed
    read_upto.notify_one();
  });
  std::exception_ptr verify_error;
  for (uint64_t c = c0; c < c1; ++c) {
    uint64_t upto = read_upto.load(std::memory_order_acquire);
    while (upto <= c) {
      read_upto.wait(upto, std::memory_order_acquire);
      upto = read_upto.load(std::memory_order_acquire);
    }
    if (upto == UINT64_MAX && read_error) break;
    try {
      check_chunk(path, t, c, dst + (c - c0) * cb, chunk_end(c) - c * cb);
    } catch (...) {
      verify_error = std::current_exception();
      stop.store(true, std::memory_order_relaxed);
      break;
    }
  }
  reader.join();
  if (read_error) std::rethrow_exception(read_error);
  if (verify_error) std::rethrow_exception(verify_error);
}

// Reads tensor bytes [b0, b1) into dst, reading and verifying exactly the chunks that hold
// them. Chunks wanted whole go straight into dst; at most two edge chunks use scratch.
void read_verified(int fd, const std::string& path, const tensor_entry& t, uint64_t b0,
                   uint64_t b1, unsigned char* dst) {
  const uint64_t cb = t.chunk_bytes;
  const uint64_t last = (b1 + cb - 1) / cb;
  auto chunk_end = [&](uint64_t c) { return std::min((c + 1) * cb, t.bytes); };
  // the chunks wholly inside [b0, b1)
  const uint64_t first_whole = (b0 + cb - 1) / cb;
  uint64_t end_whole = first_whole;
  while (end_whole < last && chunk_end(end_whole) <= b1) ++end_whole;
  std::vector<unsigned char> scratch;
  auto read_edge = [&](uint64_t c) {
    const uint64_t cs = c * cb, ce = chunk_end(c);
    scratch.resize(ce - cs);
    pread_exact(fd, scratch.data(), ce - cs, t.offset + cs, path, t.name);
    check_chunk(path, t, c, scratch.data(), ce - cs);
    const uint64_t from = std::max(cs, b0), to = std::min(ce, b1);
    std::memcpy(dst + (from - b0), scratch.data() + (from - cs), to - from);
  };
  if (end_whole == first_whole) {  // no whole chunk: one or two edge chunks
    for (uint64_t c = b0 / cb; c < last; ++c) read_edge(c);
    return;
  }
  if (b0 / cb < first_whole) read_edge(b0 / cb);
  read_whole_chunks(fd, path, t, first_whole, end_whole, dst + (first_whole * cb - b0));
  if (end_whole < last) read_edge(end_whole);
}

// What a file that is not a shard looks like, for the error message.
std::string describe_foreign(const unsigned char* prefix) {
  const auto magic = static_cast<int32_t>(get_le(prefix, 4));
  if (magic == 20240326) {
    return "it is an llm.c model file (magic 20240326): start a run from it with [model] init_from";
  }
  if (magic == 20240520) return "it is an llm.c token shard (magic 20240520), a data file";
  std::string hex;
  for (int i = 0; i < 8; ++i) hex += fmt::format("{}{:02x}", i ? " " : "", prefix[i]);
  return fmt::format("its first bytes are {}, not \"LZSHARD\\0\"", hex);
}

shard_meta decode_meta(schema::ShardHeader::Reader h) {
  shard_meta m;
  m.run_id = str(h.getRunId());
  m.step = h.getStep();
  m.generation = h.getGeneration();
  m.world_size = h.getWorldSize();
  m.rank = h.getRank();
  m.flat_total = h.getFlatTotal();
  m.range = {h.getRangeBegin(), h.getRangeEnd()};
  m.data_seed = h.getDataSeed();
  for (uint64_t v : h.getRngState()) m.rng_state.push_back(v);
  m.model = str(h.getModel());
  return m;
}

tensor_entry decode_tensor(schema::TensorEntry::Reader r) {
  tensor_entry e;
  e.name = str(r.getName());
  e.dtype = str(r.getDtype());
  e.offset = r.getOffset();
  e.bytes = r.getBytes();
  e.xxh3 = r.getXxh3();
  e.chunk_bytes = r.getChunkBytes();
  const auto chunks = r.getChunkXxh3();
  e.chunk_xxh3.reserve(chunks.size());
  for (uint64_t v : chunks) e.chunk_xxh3.push_back(v);
  return e;
}

// Reads the prefix and header and checks everything that can be checked without reading
// tensor data: the table must describe tensors that lie inside this very file.
shard_info read_header(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    LZ_THROW(io_error, "cannot stat shard '{}': {}", path, std::strerror(errno));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  unsigned char prefix[k_prefix_bytes] = {};
  pread_exact(fd, prefix, std::min(size, k_prefix_bytes), 0, path, k_header_name);
  if (size >= sizeof(k_magic) && std::memcmp(prefix, k_magic, sizeof(k_magic)) != 0) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}' is not a Lazarus checkpoint shard: {}", path,
                     describe_foreign(prefix));
  }
  if (size < k_prefix_bytes) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}' is {} bytes, shorter than the {}-byte shard "
                     "prefix: the file is truncated; {}", path, size, k_prefix_bytes, k_fallback);
  }
  const auto version = static_cast<uint32_t>(get_le(prefix + 8, 4));
  if (version != k_shard_format_version) {
    LZ_THROW(format_error, "'{}' has shard format version {}; this build reads version {}: {}",
             path, version, k_shard_format_version,
             version > k_shard_format_version
                 ? "it was written by a newer Lazarus; load it with that version"
                 : "it was written by an older Lazarus whose format this build no longer reads");
  }
  const uint64_t header_bytes = get_le(prefix + 12, 4);
  const uint64_t stored_xxh3 = get_le(prefix + 16, 8);
  if (header_bytes == 0 || header_bytes % sizeof(capnp::word) != 0) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}' records a header of {} bytes, not a whole "
                     "number of 8-byte words: the prefix is damaged; {}", path, header_bytes,
                     k_fallback);
  }
  if (k_prefix_bytes + header_bytes > size) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}' is {} bytes but its header ends at byte {}: "
                     "the file is truncated inside the header; {}", path, size,
                     k_prefix_bytes + header_bytes, k_fallback);
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(header_bytes / sizeof(capnp::word));
  pread_exact(fd, words.begin(), header_bytes, k_prefix_bytes, path, k_header_name);
  const uint64_t got_xxh3 = XXH3_64bits(words.begin(), header_bytes);
  if (got_xxh3 != stored_xxh3) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}': the header fails its checksum (stored {:016x}, "
                     "computed {:016x}): the header is damaged; {}", path, stored_xxh3, got_xxh3,
                     k_fallback);
  }

  shard_info info;
  info.header_xxh3 = stored_xxh3;
  uint32_t header_version = 0;
  try {
    capnp::ReaderOptions options;
    // Chunk tables of big shards exceed the default limit; each list is read once, so a
    // few times the header's own size bounds an honest traversal.
    options.traversalLimitInWords = words.size() * 4 + (uint64_t{1} << 20);
    capnp::FlatArrayMessageReader message(words.asPtr(), options);
    const auto root = message.getRoot<schema::ShardHeader>();
    header_version = root.getFormatVersion();
    info.meta = decode_meta(root);
    for (const auto t : root.getTensors()) info.tensors.push_back(decode_tensor(t));
    info.file_bytes = root.getFileBytes();
  } catch (const kj::Exception& e) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}': the header passes its checksum but cannot be "
                     "decoded ({}); {}", path, e.getDescription().cStr(), k_fallback);
  }
  const shard_meta& m = info.meta;
  if (header_version != version || m.world_size < 1 || m.rank < 0 || m.rank >= m.world_size ||
      m.range.begin < 0 || m.range.begin > m.range.end || m.range.end > m.flat_total) {
    LZ_THROW_CORRUPT(path, k_header_name, "'{}': the header is inconsistent (version {} in a "
                     "version {} file, rank {} of {}, range [{}, {}) of {} elements); {}", path,
                     header_version, version, m.rank, m.world_size, m.range.begin, m.range.end,
                     m.flat_total, k_fallback);
  }

  std::vector<const tensor_entry*> by_offset;
  for (const tensor_entry& t : info.tensors) {
    for (const tensor_entry* u : by_offset) {
      if (u->name == t.name) {
        LZ_THROW_CORRUPT(path, t.name, "'{}' lists tensor '{}' twice; {}", path, t.name,
                         k_fallback);
      }
    }
    if (t.dtype != "f32") {
      LZ_THROW(format_error, "'{}': tensor '{}' has dtype '{}'; this build reads only f32", path,
               t.name, t.dtype);
    }
    const uint64_t want_bytes = static_cast<uint64_t>(m.range.size()) * sizeof(float);
    const uint64_t chunks = t.chunk_bytes == 0 ? 0 : (t.bytes + t.chunk_bytes - 1) / t.chunk_bytes;
    if (t.bytes != want_bytes || t.offset % k_align != 0 ||
        t.offset < k_prefix_bytes + header_bytes || t.offset > info.file_bytes ||
        t.bytes > info.file_bytes - t.offset || t.chunk_bytes == 0 ||
        t.chunk_bytes > k_max_chunk_bytes || t.chunk_xxh3.size() != chunks) {
      LZ_THROW_CORRUPT(path, t.name, "'{}': the header's entry for tensor '{}' is impossible "
                       "({} bytes at offset {} for {} f32 elements, {} chunk checksums of {} "
                       "bytes, file of {} bytes); {}", path, t.name, t.bytes, t.offset,
                       m.range.size(), t.chunk_xxh3.size(), t.chunk_bytes, info.file_bytes,
                       k_fallback);
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const tensor_entry* a, const tensor_entry* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->bytes) {
      LZ_THROW_CORRUPT(path, by_offset[i]->name, "'{}': tensors '{}' and '{}' overlap; {}", path,
                       by_offset[i - 1]->name, by_offset[i]->name, k_fallback);
    }
  }

  if (size < info.file_bytes) {
    for (const tensor_entry* t : by_offset) {
      if (t->offset + t->bytes > size) {
        LZ_THROW_CORRUPT(path, t->name, "'{}' is {} bytes but its header says {}: tensor '{}' "
                         "(bytes {}..{}) is cut short; the file is truncated; {}", path, size,
                         info.file_bytes, t->name, t->offset, t->offset + t->bytes, k_fallback);
      }
    }
  }
  if (size != info.file_bytes) {
    LZ_THROW_CORRUPT(path, "<file>", "'{}' is {} bytes but its header says {}: the file was "
                     "changed after it was written; {}", path, size, info.file_bytes, k_fallback);
  }
  return info;
}

const tensor_entry& find_tensor(const shard_info& info, const std::string& path,
                                const std::string& name) {
  std::string names;
  for (const tensor_entry& t : info.tensors) {
    if (t.name == name) return t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  LZ_THROW(format_error, "shard '{}' has no tensor '{}' (it holds: {})", path, name, names);
}

}  // namespace

shard_reader::shard_reader(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    LZ_THROW(io_error, "cannot open shard '{}': {}", path, std::strerror(errno));
  }
  try {
    info_ = read_header(fd_, path_);
  } catch (...) {
    ::close(fd_);  // the destructor does not run for a constructor that throws
    fd_ = -1;
    throw;
  }
}

shard_reader::~shard_reader() {
  if (fd_ >= 0) ::close(fd_);
}

void shard_reader::read_range(const std::string& name, flat_range range, float* out) {
  const tensor_entry& t = find_tensor(info_, path_, name);
  const flat_range held = info_.meta.range;
  LZ_CHECK(range.begin >= held.begin && range.begin <= range.end && range.end <= held.end,
           "range [{}, {}) is not inside shard '{}' range [{}, {})", range.begin, range.end,
           path_, held.begin, held.end);
  if (range.size() == 0) return;
  read_verified(fd_, path_, t, static_cast<uint64_t>(range.begin - held.begin) * sizeof(float),
                static_cast<uint64_t>(range.end - held.begin) * sizeof(float),
                reinterpret_cast<unsigned char*>(out));
}

void shard_reader::verify_all() {
  std::vector<unsigned char> buffer;
  for (const tensor_entry& t : info_.tensors) {
    const uint64_t per_call = std::max<uint64_t>(1, k_io_bytes / t.chunk_bytes);
    const uint64_t chunks = t.chunk_xxh3.size();
    buffer.resize(std::min(per_call * t.chunk_bytes, t.bytes));
    xxh3_state whole = make_xxh3_state();
    for (uint64_t c = 0; c < chunks; c += per_call) {
      const uint64_t begin = c * t.chunk_bytes;
      const uint64_t end = std::min((c + per_call) * t.chunk_bytes, t.bytes);
      pread_exact(fd_, buffer.data(), end - begin, t.offset + begin, path_, t.name);
      for (uint64_t k = c; k < std::min(c + per_call, chunks); ++k) {
        const uint64_t at = k * t.chunk_bytes - begin;
        const uint64_t n = std::min(t.chunk_bytes, end - begin - at);
        check_chunk(path_, t, k, buffer.data() + at, n);
      }
      XXH3_64bits_update(whole.get(), buffer.data(), end - begin);
    }
    const uint64_t got = XXH3_64bits_digest(whole.get());
    if (got != t.xxh3) {
      LZ_THROW_CORRUPT(path_, t.name, "'{}': tensor '{}' passes every chunk checksum but not its "
                       "whole-tensor checksum (stored {:016x}, computed {:016x}): the header is "
                       "inconsistent; {}", path_, t.name, t.xxh3, got, k_fallback);
    }
  }
}

}  // namespace lz::checkpoint
