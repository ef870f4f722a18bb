// node_agent.cpp: `lazarus node` (see node_agent.hpp).
#include "actors/node_agent.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/caf_runtime.hpp"
#include "actors/data_feeder.hpp"
#include "actors/messages.hpp"
#include "actors/process_util.hpp"
#include "actors/stop_signal.hpp"
#include "config/run_spec.hpp"

namespace lz::actors {

namespace {

using reaped_atom = caf::atom_constant<caf::atom("reaped")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

struct child {
  int32_t rank = 0;
  int64_t generation = 0;
};

struct node_state {
  node_options opts;
  caf::actor coordinator;
  caf::actor supervisor;  // heartbeats and worker exits
  std::shared_ptr<spdlog::logger> log;
  int32_t node_id = -1;
  caf::actor feeder;
  uint16_t feeder_port = 0;
  std::map<pid_t, child> children;
  // end_generation requests, answered once no worker of their generation or older is left
  std::vector<std::pair<int64_t, caf::typed_response_promise<bool>>> ending_generations;
  bool ending = false;
  int exit_code = 0;
  std::shared_ptr<std::promise<int>> done;
};

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

// SIGKILL to every worker of generation `up_to` or older but those in `keep`, which become
// workers of generation up_to + 1; returns how many were killed.
int kill_children(node_state& st, int64_t up_to = INT64_MAX, const std::vector<int32_t>& keep = {}) {
  int killed = 0;
  for (auto& [pid, c] : st.children) {
    if (c.generation > up_to) continue;
    if (std::find(keep.begin(), keep.end(), static_cast<int32_t>(pid)) != keep.end()) {
      c.generation = up_to + 1;
      continue;
    }
    ::kill(pid, SIGKILL);
    killed++;
  }
  return killed;
}

// Answers the end_generation requests whose workers have all been reaped.
void answer_ended_generations(node_state& st) {
  auto& pending = st.ending_generations;
  for (auto it = pending.begin(); it != pending.end();) {
    const int64_t g = it->first;
    const bool left = std::any_of(st.children.begin(), st.children.end(),
                                  [g](const auto& c) { return c.second.generation <= g; });
    if (left) {
      ++it;
      continue;
    }
    it->second.deliver(true);
    it = pending.erase(it);
  }
}

// Ends the node once no worker is left (the reaper reports each exit).
void end_if_idle(caf::event_based_actor* self, node_state& st) {
  if (!st.ending || !st.children.empty()) return;
  if (st.feeder) self->send_exit(st.feeder, caf::exit_reason::user_shutdown);
  st.done->set_value(st.exit_code);
  self->quit();
}

caf::behavior node_supervisor(caf::event_based_actor* self, std::shared_ptr<node_state> st) {
  self->monitor(st->coordinator);
  self->set_down_handler([self, st](const caf::down_msg& d) {
    if (d.source != st->coordinator) return;
    st->log->error("the coordinator is gone ({}): stopping this node's workers",
                   to_string(d.reason));
    st->ending = true;
    st->exit_code = 1;
    kill_children(*st);
    end_if_idle(self, *st);
  });
  char host_name[256] = {};
  ::gethostname(host_name, sizeof host_name - 1);
  const std::string name = st->opts.name.empty() ? host_name : st->opts.name;
  self->request(st->coordinator, std::chrono::seconds(30),
                msg::node_hello{name, st->opts.host, st->opts.slots,
                                static_cast<int32_t>(::getpid()), caf::actor_cast<caf::actor>(self)})
      .then(
          [self, st, name](msg::node_welcome& w) {
            st->node_id = w.node_id;
            st->supervisor = w.supervisor;
            const config::run_spec spec = config::parse_spec(w.spec_toml, "the coordinator's spec");
            st->log->set_level(spdlog::level::from_str(spec.logging.level));
            st->opts.heartbeat_interval_ms = spec.fault_tolerance.heartbeat_interval_ms;
            st->feeder = self->spawn(data_feeder, spec);
            auto port = self->system().middleman().publish(st->feeder, 0, "127.0.0.1");
            if (!port) {
              st->log->error("cannot publish the data feeder: {}", self->system().render(port.error()));
              st->ending = true;
              st->exit_code = 1;
              end_if_idle(self, *st);
              return;
            }
            st->feeder_port = *port;
            st->log->info("joined run {} as node {} ('{}') with {} slot(s); data feeder on "
                          "127.0.0.1:{}", w.run_id, w.node_id, name, st->opts.slots, *port);
            self->send(self, tick_atom::value);
          },
          [self, st](caf::error& e) {
            st->log->error("the coordinator refused this node: {}", error_text(self->system(), e));
            st->ending = true;
            st->exit_code = 1;
            end_if_idle(self, *st);
          });
  return {
      [self, st](const msg::start_workers& s) {
        for (size_t i = 0; i < s.adopt_pids.size() && i < s.adopt_ranks.size(); i++) {
          const auto it = st->children.find(s.adopt_pids[i]);
          if (it == st->children.end()) continue;  // it ended meanwhile (its exit is reported)
          st->log->info("g{}: pid {} (rank {} of generation {}) carries on as rank {}",
                        s.generation, it->first, it->second.rank, it->second.generation,
                        s.adopt_ranks[i]);
          it->second = {s.adopt_ranks[i], s.generation};
        }
        for (size_t i = 0; i < s.ranks.size(); i++) {
          const int32_t rank = s.ranks[i];
          const int32_t slot = i < s.slots.size() ? s.slots[i] : static_cast<int32_t>(i);
          const std::vector<std::string> args{
              "worker", "--coordinator", st->opts.join, "--rank", std::to_string(rank),
              "--generation", std::to_string(s.generation), "--node-id",
              std::to_string(st->node_id), "--feeder-port", std::to_string(st->feeder_port),
              "--host", st->opts.host};
          pid_t pid = 0;
          try {
            pid = spawn_self(args);
          } catch (const lz::error& e) {
            st->log->error("cannot start rank {}: {}", rank, e.what());
            self->send(st->supervisor, msg::worker_exited{st->node_id, s.generation, rank, 0, 127, 0});
            continue;
          }
          st->children[pid] = {rank, s.generation};
          st->log->info("g{}: started rank {} of {} in slot {} (pid {})", s.generation, rank, s.world,
                        slot, pid);
          std::thread([pid, me = caf::actor_cast<caf::actor>(self)] {
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            caf::anon_send(me, reaped_atom::value, static_cast<int32_t>(pid), status);
          }).detach();
        }
      },
      [self, st](reaped_atom, int32_t pid, int status) {
        const auto it = st->children.find(pid);
        if (it == st->children.end()) return;
        const child c = it->second;
        st->children.erase(it);
        const bool by_signal = WIFSIGNALED(status);
        const auto level = status == 0 ? spdlog::level::info : spdlog::level::warn;
        st->log->log(level, "g{}: rank {} (pid {}) ended: {}", c.generation, c.rank, pid,
                     describe_wait_status(status));
        self->send(st->supervisor,
                   msg::worker_exited{st->node_id, c.generation, c.rank, pid,
                                      WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                      by_signal ? WTERMSIG(status) : 0});
        answer_ended_generations(*st);
        end_if_idle(self, *st);
      },
      [self, st](const msg::end_generation& e) -> caf::result<bool> {
        const int killed = kill_children(*st, e.generation, e.keep_pids);
        st->log->info("g{}: the world of generation {} is fenced: {} worker(s) of it ended, "
                      "the survivors of the coordinator's list stay", e.generation + 1,
                      e.generation, killed);
        auto promise = self->make_response_promise<bool>();
        st->ending_generations.emplace_back(e.generation, promise);
        answer_ended_generations(*st);
        return promise;
      },
      [st](const msg::kill_workers& k) {
        for (const int32_t pid : k.pids) {
          const auto it = st->children.find(pid);
          if (it == st->children.end()) continue;
          st->log->warn("g{}: killing rank {} (pid {}) as the coordinator asks", it->second.generation,
                        it->second.rank, pid);
          ::kill(pid, SIGKILL);
        }
      },
      [self, st](const msg::end_run& e) {
        st->log->info("the coordinator ends the run: {}", e.reason);
        st->ending = true;
        if (e.kill_workers) kill_children(*st);
        end_if_idle(self, *st);
      },
      [self, st](tick_atom) {
        if (st->ending) return;
        if (stop_signal() != 0 && !st->children.empty()) {
          st->log->warn("signal {}: the coordinator decides how the run stops; a second signal "
                        "ends this node and its workers now", stop_signal());
        }
        self->send(st->supervisor, msg::node_heartbeat{st->node_id, unix_ms()});
        self->delayed_send(self, std::chrono::milliseconds(st->opts.heartbeat_interval_ms),
                           tick_atom::value);
      },
  };
}

}  // namespace

int run_node(const node_options& options) {
  die_with_parent();
  install_stop_handlers();
  auto log = spdlog::stderr_color_mt(options.name.empty() ? "node" : "node " + options.name);
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %^%l%$ %v");
  log->flush_on(spdlog::level::info);
  if (options.slots < 1) LZ_THROW(spec_error, "--slots must be at least 1, got {}", options.slots);
  caf_runtime runtime({});
  auto st = std::make_shared<node_state>();
  st->opts = options;
  st->log = log;
  st->done = std::make_shared<std::promise<int>>();
  auto finished = st->done->get_future();
  st->coordinator = connect_remote(runtime.system(), parse_host_port(options.join, "--join"),
                                   std::chrono::seconds(60), "coordinator");
  runtime.system().spawn(node_supervisor, st);
  const int code = finished.get();
  return code;
}

}  // namespace lz::actors
