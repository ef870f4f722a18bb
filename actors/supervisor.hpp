// supervisor.hpp: watches the node agents and the workers of a run for the coordinator.
//
// The coordinator tells it each node that joined (watch_node); the node agents send it
// their heartbeats and their workers' exits. It reports to the coordinator a `fault` that
// names the node, the rank when there is one, and the reason: a node agent whose connection
// closed (CAF's down message; with the middleman's heartbeats a hung peer counts too), one
// whose heartbeats stopped for the timeout (health.hpp), a worker that died. The decisions
// themselves are pure functions (health.hpp); what to do about a fault is the coordinator's.
#pragma once

#include <chrono>
#include <memory>

#include <caf/all.hpp>
#include <spdlog/logger.h>

namespace lz::actors {

caf::behavior supervisor(caf::event_based_actor* self, caf::actor coordinator,
                         std::chrono::milliseconds heartbeat_timeout,
                         std::shared_ptr<spdlog::logger> log);

}  // namespace lz::actors
