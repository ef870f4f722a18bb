// error.hpp: the project's exception hierarchy and its always-on assertion.
//
// Exceptions are for failing operations (I/O, bad input, a dead peer); each message names
// the problem, the values involved and a fix, and carries the file:line that raised it.
// A broken invariant is a bug: LZ_CHECK aborts with file:line in every build type.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace lz {

// Base of every exception Lazarus throws on purpose.
class error : public std::runtime_error {
public:
  error(const std::string& message, const char* file, int line)
    : std::runtime_error(message + " [" + file + ":" + std::to_string(line) + "]") {}
};

class spec_error : public error { using error::error; };     // run spec, CLI arguments
class data_error : public error { using error::error; };     // token shards, corpora
class io_error : public error { using error::error; };       // files, disks, sockets
class format_error : public error { using error::error; };   // checkpoint / weight files

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line,
                                      const std::string& detail) {
  std::fprintf(stderr, "lazarus: internal check failed: %s %s [%s:%d]\n", expr,
               detail.c_str(), file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace lz

// Throws exception type T with a fmt-style message, adding file:line.
#define LZ_THROW(T, ...) throw T(fmt::format(__VA_ARGS__), __FILE__, __LINE__)

// Always-on assertion for invariants (never for data read from outside the process).
#define LZ_CHECK(cond, ...)                                                         \
  do {                                                                              \
    if (!(cond)) ::lz::check_failed(#cond, __FILE__, __LINE__, fmt::format("" __VA_ARGS__)); \
  } while (0)
