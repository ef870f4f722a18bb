// supervisor.cpp: see supervisor.hpp.
#include "actors/supervisor.hpp"

#include <map>
#include <string>

#include "actors/health.hpp"
#include "actors/messages.hpp"

namespace lz::actors {

namespace {

using check_atom = caf::atom_constant<caf::atom("check")>;

struct watched_node {
  std::string name;
  caf::actor agent;
};

struct supervisor_state {
  caf::actor coordinator;
  std::chrono::milliseconds timeout;
  std::shared_ptr<spdlog::logger> log;
  std::map<int32_t, watched_node> nodes;
  std::map<int32_t, health_clock::time_point> last_heard;  // nodes not yet lost
  bool quiet = false;  // the run is ending: departures are expected
};

}  // namespace

caf::behavior supervisor(caf::event_based_actor* self, caf::actor coordinator,
                         std::chrono::milliseconds heartbeat_timeout,
                         std::shared_ptr<spdlog::logger> log) {
  auto st = std::make_shared<supervisor_state>();
  st->coordinator = std::move(coordinator);
  st->timeout = heartbeat_timeout;
  st->log = std::move(log);
  // At its end the handles go: the state lives on in the handlers below as long as the
  // actor object, and must not keep the coordinator (and through it the catalog) alive.
  self->attach_functor([st] {
    st->coordinator = nullptr;
    st->nodes.clear();
  });
  const auto report = [self, st](int32_t node, int32_t rank, int64_t generation,
                                 const std::string& reason) {
    st->last_heard.erase(node);
    if (st->quiet) return;
    self->send(st->coordinator, msg::fault{generation, rank, node, reason});
  };
  self->set_down_handler([st, report](const caf::down_msg& d) {
    for (const auto& [id, n] : st->nodes) {
      if (n.agent.address() == d.source && st->last_heard.count(id) != 0) {
        report(id, -1, -1, fmt::format("node '{}' was lost ({})", n.name, to_string(d.reason)));
      }
    }
  });
  self->delayed_send(self, heartbeat_timeout / 4, check_atom::value);
  return {
      [self, st](const msg::watch_node& w) {
        self->monitor(w.agent);
        st->nodes[w.node_id] = {w.name, w.agent};
        st->last_heard[w.node_id] = health_clock::now();
      },
      [st](const msg::node_heartbeat& h) {
        if (const auto it = st->last_heard.find(h.node_id); it != st->last_heard.end()) {
          it->second = health_clock::now();
        }
      },
      [self, st](const msg::worker_exited& e) {
        const auto fault = exit_fault(e.exit_code, e.signal);
        if (!fault || st->quiet) return;
        const auto it = st->nodes.find(e.node_id);
        const std::string node = it == st->nodes.end() ? "?" : it->second.name;
        self->send(st->coordinator,
                   msg::fault{e.generation, e.rank, e.node_id,
                              fmt::format("rank {} on node '{}' (pid {}) {}", e.rank, node, e.pid,
                                          *fault), e.pid});
      },
      [st](const msg::end_run&) { st->quiet = true; },
      [self, st, report](check_atom) {
        for (const auto& [node, why] : silent_nodes(health_clock::now(), st->last_heard, st->timeout)) {
          report(node, -1, -1, fmt::format("node '{}' {}", st->nodes[node].name, why));
        }
        self->delayed_send(self, st->timeout / 4, check_atom::value);
      },
  };
}

}  // namespace lz::actors
