// health.hpp: who is dead, decided as pure functions of (now, what was heard) for the
// supervisor, so that every case is a unit test with an injected clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace lz::actors {

using health_clock = std::chrono::steady_clock;

// The nodes (by id) whose last heartbeat is older than `timeout` at `now`, with the reason
// in words; nodes already known lost are not in `last_heard`.
std::map<int32_t, std::string> silent_nodes(health_clock::time_point now,
                                            const std::map<int32_t, health_clock::time_point>& last_heard,
                                            std::chrono::milliseconds timeout);

// Whether a worker's exit is a fault: any signal, any non-zero code. A worker that finished
// its work exits 0 after the coordinator acknowledged its last report.
std::optional<std::string> exit_fault(int32_t exit_code, int32_t signal);

}  // namespace lz::actors
