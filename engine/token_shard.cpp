// token_shard.cpp: reading, validating and atomically writing llm.c token shards.
#include "engine/token_shard.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fcntl.h>     // open, O_* flags
#include <glob.h>      // glob, globfree
#include <sys/stat.h>  // fstat
#include <unistd.h>    // read, write, fsync, close

#include "config/error.hpp"  // LZ_THROW, lz::data_error, lz::io_error

namespace lz::engine {
namespace {

// Closes a POSIX file descriptor on scope exit (read paths; writes close explicitly).
class fd_guard {
public:
  explicit fd_guard(int fd) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() { if (fd_ >= 0) ::close(fd_); }
  int get() const { return fd_; }
  // Closes now and returns close(2)'s result, so a failed close can be reported.
  int close_now() { int rc = ::close(fd_); fd_ = -1; return rc; }

private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

// Reads exactly `bytes` bytes; returns how many were read before EOF.
size_t read_fully(int fd, void* data, size_t bytes, const std::string& path) {
  auto* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = ::read(fd, p + done, bytes - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      LZ_THROW(lz::data_error, "token shard {}: cannot read: {}", path, errno_text());
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void write_fully(int fd, const void* data, size_t bytes, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = ::write(fd, p + done, bytes - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) LZ_THROW(lz::io_error, "cannot write {}: {}", path, errno_text());
    done += static_cast<size_t>(n);
  }
}

// Little-endian int32 at byte offset 4*i of the header.
int32_t header_int(const std::array<unsigned char, token_shard_header_bytes>& h, int i) {
  uint32_t v = uint32_t(h[4 * i]) | uint32_t(h[4 * i + 1]) << 8 |
               uint32_t(h[4 * i + 2]) << 16 | uint32_t(h[4 * i + 3]) << 24;
  return static_cast<int32_t>(v);
}

void put_header_int(std::array<unsigned char, token_shard_header_bytes>& h, int i,
                    int32_t value) {
  auto v = static_cast<uint32_t>(value);
  for (int k = 0; k < 4; ++k) h[4 * i + k] = static_cast<unsigned char>(v >> (8 * k));
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::vector<uint16_t> read_token_shard(const std::string& path, int64_t vocab_size) {
  fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    LZ_THROW(lz::data_error, "token shard {}: cannot open: {} (check data.train / data.val "
             "in the run spec, or run `lazarus data prepare`)", path, errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    LZ_THROW(lz::data_error, "token shard {}: cannot stat: {}", path, errno_text());
  if (!S_ISREG(st.st_mode))
    LZ_THROW(lz::data_error, "token shard {}: not a regular file", path);
  const int64_t file_bytes = st.st_size;
  if (file_bytes < token_shard_header_bytes)
    LZ_THROW(lz::data_error, "token shard {}: file is {} bytes, shorter than the {}-byte "
             "header of an llm.c token shard", path, file_bytes, token_shard_header_bytes);

  std::array<unsigned char, token_shard_header_bytes> header{};
  if (read_fully(fd.get(), header.data(), header.size(), path) != header.size())
    LZ_THROW(lz::data_error, "token shard {}: file ended inside the header", path);
  const int32_t magic = header_int(header, 0);
  const int32_t version = header_int(header, 1);
  const int32_t count = header_int(header, 2);
  if (magic != token_shard_magic)
    LZ_THROW(lz::data_error, "token shard {}: bad magic {}, expected {} (an llm.c token "
             "shard){}", path, magic, token_shard_magic,
             magic == 20240326 ? "; 20240326 is an llm.c model checkpoint, not token data"
                               : " (20240326 would be an llm.c model checkpoint)");
  if (version != token_shard_version)
    LZ_THROW(lz::data_error, "token shard {}: unsupported version {}, expected {}", path,
             version, token_shard_version);
  const int64_t data_bytes = file_bytes - token_shard_header_bytes;
  if (count < 0 || int64_t{count} * 2 != data_bytes) {
    const char* what = int64_t{count} * 2 > data_bytes ? "truncated" : "trailing bytes";
    LZ_THROW(lz::data_error, "token shard {}: header says {} tokens ({} bytes) but the file "
             "holds {} bytes of token data ({}); re-create it with `lazarus data prepare`",
             path, count, int64_t{count} * 2, data_bytes, what);
  }

  std::vector<uint16_t> tokens(static_cast<size_t>(count));  // (N,)
  const size_t want = tokens.size() * sizeof(uint16_t);
  if (read_fully(fd.get(), tokens.data(), want, path) != want)
    LZ_THROW(lz::data_error, "token shard {}: file shrank while being read", path);
  if constexpr (std::endian::native == std::endian::big) {
    for (auto& t : tokens) t = static_cast<uint16_t>((t >> 8) | (t << 8));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (int64_t{tokens[i]} >= vocab_size)
      LZ_THROW(lz::data_error, "token shard {}: token {} at position {} is outside the "
               "vocabulary (model.vocab_size = {}); the shard was prepared with another "
               "tokenizer or model.vocab_size is too small", path, tokens[i], i, vocab_size);
  }
  return tokens;
}

void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    LZ_THROW(lz::data_error, "token shard {}: {} tokens do not fit the int32 count of the "
             "header; split the data into more shards", path, tokens.size());
  std::array<unsigned char, token_shard_header_bytes> header{};
  put_header_int(header, 0, token_shard_magic);
  put_header_int(header, 1, token_shard_version);
  put_header_int(header, 2, static_cast<int32_t>(tokens.size()));

  std::vector<unsigned char> body(tokens.size() * 2);  // (N,) uint16 little-endian
  for (size_t i = 0; i < tokens.size(); ++i) {
    body[2 * i] = static_cast<unsigned char>(tokens[i] & 0xff);
    body[2 * i + 1] = static_cast<unsigned char>(tokens[i] >> 8);
  }

  const std::string tmp = path + ".tmp";
  try {
    fd_guard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) LZ_THROW(lz::io_error, "cannot create {}: {}", tmp, errno_text());
    write_fully(fd.get(), header.data(), header.size(), tmp);
    write_fully(fd.get(), body.data(), body.size(), tmp);
    if (::fsync(fd.get()) != 0) LZ_THROW(lz::io_error, "cannot fsync {}: {}", tmp, errno_text());
    if (fd.close_now() != 0) LZ_THROW(lz::io_error, "cannot close {}: {}", tmp, errno_text());
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      LZ_THROW(lz::io_error, "cannot rename {} to {}: {}", tmp, path, errno_text());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  const std::string dir = parent_dir(path);
  fd_guard dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) LZ_THROW(lz::io_error, "cannot open directory {}: {}", dir, errno_text());
  if (::fsync(dir_fd.get()) != 0)
    LZ_THROW(lz::io_error, "cannot fsync directory {}: {}", dir, errno_text());
}

std::vector<std::string> expand_shard_glob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> paths;
  if (rc == 0) paths.assign(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  ::globfree(&g);
  if (rc == GLOB_NOMATCH)
    LZ_THROW(lz::data_error, "no token shard matches '{}'; check the path in the run spec "
             "or create shards with `lazarus data prepare`", pattern);
  if (rc != 0)
    LZ_THROW(lz::io_error, "cannot expand '{}': glob failed ({})", pattern,
             rc == GLOB_NOSPACE ? "out of memory" : "read error");
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace lz::engine
