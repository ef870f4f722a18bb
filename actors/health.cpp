// health.cpp: see health.hpp.
#include "actors/health.hpp"

#include <cstring>

#include <fmt/format.h>

namespace lz::actors {

std::map<int32_t, std::string> silent_nodes(health_clock::time_point now,
                                            const std::map<int32_t, health_clock::time_point>& last_heard,
                                            std::chrono::milliseconds timeout) {
  std::map<int32_t, std::string> out;
  for (const auto& [node, heard] : last_heard) {
    const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - heard);
    if (silent > timeout) {
      out[node] = fmt::format("sent no heartbeat for {} ms (heartbeat timeout {} ms)",
                              silent.count(), timeout.count());
    }
  }
  return out;
}

std::optional<std::string> exit_fault(int32_t exit_code, int32_t signal) {
  if (signal != 0) {
    const char* name = ::strsignal(signal);
    return fmt::format("was killed by signal {} ({})", signal, name != nullptr ? name : "?");
  }
  if (exit_code != 0) return fmt::format("exited with code {}", exit_code);
  return std::nullopt;
}

}  // namespace lz::actors
