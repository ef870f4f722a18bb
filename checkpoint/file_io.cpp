#include "checkpoint/file_io.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "config/error.hpp"

namespace lz::checkpoint {

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) LZ_THROW(io_error, "cannot open directory '{}': {}", dir, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) LZ_THROW(io_error, "fsync of directory '{}' failed: {}", dir, std::strerror(err));
}

std::string utc_file_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

void require_free_space(const std::string& path, uint64_t bytes, std::string_view what) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return;  // the operation itself will say what is wrong
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (free_bytes < bytes) {
    LZ_THROW(io_error, "the disk holding '{}' is full ({} KiB free, {} needs at least {} KiB): "
             "free space on that disk and retry; nothing was changed", path, free_bytes / 1024,
             what, bytes / 1024);
  }
}

void write_file_durably(const std::string& path, std::initializer_list<byte_span> parts) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    LZ_THROW(io_error, "cannot create '{}': {}; check that the directory exists and is writable",
             tmp, std::strerror(errno));
  }
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    LZ_THROW(io_error, "{} '{}' failed: {}{}", what, tmp, std::strerror(err),
             err == ENOSPC ? " (the disk is full: free space and retry)" : "");
  };
  for (const byte_span& part : parts) {
    const char* p = static_cast<const char*>(part.data);
    size_t left = part.size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write to");
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) fail("fsync of");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    LZ_THROW(io_error, "close of '{}' failed: {}", tmp, std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    LZ_THROW(io_error, "rename '{}' -> '{}' failed: {}", tmp, path, std::strerror(err));
  }
  fsync_directory(std::filesystem::path(path).parent_path().string());
}

}  // namespace lz::checkpoint
