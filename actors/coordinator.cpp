// coordinator.cpp: `lazarus coordinator` (see coordinator.hpp).
#include "actors/coordinator.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/caf_runtime.hpp"
#include "actors/catalog_actor.hpp"
#include "actors/messages.hpp"
#include "actors/model_descriptor.hpp"
#include "actors/rank_assignment.hpp"
#include "actors/recovery_plan.hpp"
#include "actors/run_files.hpp"
#include "actors/run_outputs.hpp"
#include "actors/stop_signal.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "config/json_writer.hpp"
#include "engine/dataset.hpp"
#include "engine/gpt2_config.hpp"
#include "engine/param_layout.hpp"

namespace lz::actors {

namespace fs = std::filesystem;

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using linger_atom = caf::atom_constant<caf::atom("linger")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;

constexpr auto k_tick = std::chrono::milliseconds(25);  // hang checks, signals, waits
constexpr auto k_linger = std::chrono::seconds(10);  // for node agents to end after the run

// How the run ended, for the main thread.
struct run_end {
  int exit_code = 0;
  std::string error;              // when it failed
  int stop_signal = 0;
  int64_t steps = 0;
  double final_loss = NAN;
  double val_loss = NAN;
  double train_seconds = 0.0;
  int64_t train_tokens = 0;
  int64_t start_step = 0;
  std::string weights_sha256, initial_weights_sha256, run_id;
  msg::catalog_counts counts;
  double blocked_ms = 0.0;        // ranks' checkpoint stalls, summed
  int64_t world = 0;              // ranks of the last world
  int64_t faults = 0, recoveries = 0, steps_lost = 0, generations = 1;
  std::vector<double> recovery_ms;  // fault to the first finished step after it
};

struct node_info {
  std::string name, host;
  int32_t slots = 0;
  caf::actor agent;
  bool gone = false;              // its connection closed (at the end, or lost)
  bool lost = false;              // lost while the run lived: its slots are gone
  std::vector<slot_health> health;  // per slot: failures in a row, quarantine
  bool live() const { return !gone && !lost; }
  int32_t usable() const {
    if (!live()) return 0;
    return static_cast<int32_t>(std::count_if(health.begin(), health.end(),
                                              [](const slot_health& h) { return !h.quarantined; }));
  }
};

struct rank_info {
  int32_t node = -1;
  int32_t slot = -1;
  caf::actor worker;
  health_clock::time_point last_heard;  // its hello, then its last heartbeat
  bool in_collective = false;           // as its last heartbeat said
  bool ready = false;
  std::optional<msg::rank_done> done;
};

enum class phase { joining, starting, restoring, training, recovering, stopping, ending };

// A fault being recovered from: what it cost, known when the first step after it finishes.
struct open_recovery {
  health_clock::time_point since;
  int64_t steps_done = 0;         // finished steps when it struck
  int64_t restore_step = -1;
  std::string reason;
};

struct coordinator_config {
  config::run_spec spec;          // as the user gave it (recorded in the catalog)
  std::string spec_toml_abs;      // what nodes and workers get: paths absolute
  std::string state_dir, checkpoint_root, run_id;
  bool resuming = false;
  int64_t first_generation = 0;   // the last start's generation + 1 when resuming
  bool tty = false;
  caf::actor catalog, store;
  std::shared_ptr<spdlog::logger> log;
  std::function<void()> on_accepted;  // the log file and spec.toml (main's run_logger)
  std::shared_ptr<std::promise<run_end>> done;
};

struct coord_state {
  coordinator_config cfg;
  caf::actor supervisor;
  phase ph = phase::joining;
  int64_t generation = 0;
  int32_t world = 0;
  std::vector<node_info> nodes;
  std::vector<rank_info> ranks;
  std::map<int64_t, std::vector<msg::step_report>> steps;  // step -> reports so far
  std::vector<msg::restore_result> restore_results;
  int64_t restore_step = -1;
  std::ofstream metrics;
  run_end end;
  int64_t log_every = 1;
  bool ended = false;
  bool started = false;           // the first world began training
  slot_health health;             // faults in a row without a finished step that no slot is
                                  // to blame for (lost nodes, stuck collectives: run-wide)
  std::optional<open_recovery> recovering;
  int32_t fence_replies = 0;      // node agents yet to confirm the old world has ended
  health_clock::time_point last_step_at;  // the start of this world, then its last step
  bool stepped = false;           // this world finished a step (its first includes start-up)
  std::vector<double> step_intervals_ms;  // between finished steps, this generation
  std::optional<health_clock::time_point> short_since;  // the live slots fell below the world
  bool growing = false;           // the world stops at a step boundary to start larger
};

// Slots on nodes that are connected and not lost.
int32_t usable_slots(const coord_state& st) {
  int32_t n = 0;
  for (const node_info& x : st.nodes) n += x.usable();
  return n;
}

world_policy policy_of(const config::run_spec& spec) {
  return {static_cast<int32_t>(spec.fault_tolerance.min_ranks),
          static_cast<int32_t>(spec.fault_tolerance.resolved_max_ranks(spec.parallel.ranks))};
}

std::string node_name(const coord_state& st, int32_t node) {
  return node >= 0 && node < static_cast<int32_t>(st.nodes.size())
             ? st.nodes[static_cast<size_t>(node)].name : "?";
}

// Every message to all workers of this generation.
template <class M>
void tell_workers(caf::event_based_actor* self, coord_state& st, const M& m) {
  for (const rank_info& r : st.ranks) {
    if (r.worker) self->send(r.worker, m);
  }
}

// The result goes to the main thread; the supervisor ends with this actor (a normal exit
// does not travel along a link, and the actor system waits for every actor).
void deliver_end(caf::event_based_actor* self, coord_state& st) {
  self->send_exit(st.supervisor, caf::exit_reason::user_shutdown);
  st.cfg.done->set_value(st.end);
  self->quit();
}

// The run is over, one way or another: the node agents are told (and end their workers at
// once when `kill`), and the result goes to the main thread once every agent has gone or
// k_linger has passed.
void end_run(caf::event_based_actor* self, coord_state& st, bool kill, const std::string& why) {
  if (st.ended) return;
  st.ended = true;
  st.ph = phase::ending;
  self->send(st.supervisor, msg::end_run{why, kill});  // departures are expected now
  for (node_info& n : st.nodes) {
    if (!n.gone) self->send(n.agent, msg::end_run{why, kill});
  }
  self->delayed_send(self, k_linger, linger_atom::value);
  const bool all_gone = std::all_of(st.nodes.begin(), st.nodes.end(), [](const node_info& n) { return n.gone; });
  if (all_gone) {
    deliver_end(self, st);
  }
}

void fail(caf::event_based_actor* self, coord_state& st, const std::string& why) {
  if (st.ended) return;
  st.cfg.log->error("g{}: {}; the run stops (its committed checkpoints are kept: run the same "
                    "command to resume)", st.generation, why);
  st.end.exit_code = 1;
  st.end.error = why;
  end_run(self, st, true, why);
}

// More slots than ranks (a node joined): the world stops at the next step boundary, saves
// that step, and starts again larger from it. Only with checkpoints, which carry the state
// across.
void maybe_grow(caf::event_based_actor* self, coord_state& st) {
  const config::run_spec& spec = st.cfg.spec;
  if (st.ph != phase::training || st.growing || spec.checkpoint.every_steps == 0) return;
  const int32_t target = std::min(usable_slots(st), policy_of(spec).max_ranks);
  if (target <= st.world) return;
  st.growing = true;
  st.ph = phase::stopping;
  st.cfg.log->info("g{}: {} usable slot(s) for {} rank(s): the world stops after this step, "
                   "saves it and grows to {} rank(s)", st.generation, usable_slots(st), st.world,
                   target);
  tell_workers(self, st, msg::stop_training{st.generation, "the world grows"});
}

using state_ptr = std::shared_ptr<coord_state>;

void start_training(caf::event_based_actor* self, const state_ptr& sp, int64_t start_step) {
  self->request(sp->cfg.catalog, std::chrono::minutes(5),
                msg::start_accepted{sp->generation, start_step, sp->world})
      .then(
          [self, sp, start_step](const std::string& run_id) {
            coord_state& st = *sp;
            st.end.run_id = run_id;
            if (!st.started) {
              st.end.start_step = start_step;
              if (st.cfg.on_accepted) st.cfg.on_accepted();
            }
            st.started = true;
            if (st.recovering) st.recovering->restore_step = start_step;
            st.end.steps = start_step;
            st.last_step_at = health_clock::now();
            st.stepped = false;
            st.step_intervals_ms.clear();
            double loss_at_start = NAN;
            st.metrics = open_metrics(metrics_path(st.cfg.state_dir), start_step, loss_at_start,
                                      *st.cfg.log);
            st.end.final_loss = loss_at_start;
            st.ph = phase::training;
            tell_workers(self, st, msg::begin_training{st.generation, start_step});
            maybe_grow(self, st);  // a node that joined meanwhile
          },
          [self, sp](caf::error& e) { fail(self, *sp, error_text(self->system(), e)); });
}

void pick_restore_point(caf::event_based_actor* self, const state_ptr& sp, int64_t before_step) {
  self->request(sp->cfg.catalog, std::chrono::minutes(5), msg::restore_pick{before_step})
      .then(
          [self, sp](msg::restore_choice& c) {
            coord_state& st = *sp;
            if (!c.found) {  // nothing to restore: a run with no checkpoint yet starts over
              start_training(self, sp, 0);
              return;
            }
            st.ph = phase::restoring;
            st.restore_step = c.point.step;
            st.restore_results.clear();
            c.point.generation = st.generation;
            tell_workers(self, st, c.point);
          },
          [self, sp](caf::error& e) { fail(self, *sp, error_text(self->system(), e)); });
}

void assign_and_start(caf::event_based_actor* self, coord_state& st) {
  std::vector<int32_t> slots;
  for (const node_info& n : st.nodes) slots.push_back(n.usable());
  const std::vector<int32_t> node_of = assign_ranks(slots, st.world);
  if (node_of.empty()) return;  // not enough slots yet
  st.ranks.assign(static_cast<size_t>(st.world), rank_info{});
  std::map<int32_t, msg::start_workers> by_node;
  for (int32_t r = 0; r < st.world; r++) {
    const int32_t node = node_of[static_cast<size_t>(r)];
    msg::start_workers& s = by_node[node];
    // the node's next slot that is not quarantined
    const auto& health = st.nodes[static_cast<size_t>(node)].health;
    int32_t slot = s.slots.empty() ? 0 : s.slots.back() + 1;
    while (health[static_cast<size_t>(slot)].quarantined) slot++;
    s.ranks.push_back(r);
    s.slots.push_back(slot);
    st.ranks[static_cast<size_t>(r)].node = node;
    st.ranks[static_cast<size_t>(r)].slot = slot;
  }
  st.ph = phase::starting;
  for (auto& [node, s] : by_node) {
    std::string list;
    for (int32_t r : s.ranks) list += (list.empty() ? "" : ", ") + std::to_string(r);
    st.cfg.log->info("g{}: node '{}' runs rank(s) {}", st.generation, node_name(st, node), list);
    s.generation = st.generation;
    s.world = st.world;
    self->send(st.nodes[static_cast<size_t>(node)].agent, s);
  }
}

// All ranks reported step `step`: one line of metrics, the progress line, the log.
void record_step(coord_state& st, int64_t step, const std::vector<msg::step_report>& reports) {
  const config::run_spec& spec = st.cfg.spec;
  double slowest = 0.0, sum_ms = 0.0, data_wait = 0.0, comm = 0.0, val_loss = -1.0;
  for (const auto& r : reports) {
    slowest = std::max(slowest, r.step_ms);
    sum_ms += r.step_ms;
    data_wait = std::max(data_wait, r.data_wait_ms);
    comm += r.comm_ms;
    if (r.val_loss >= 0) val_loss = r.val_loss;
  }
  const msg::step_report& r0 = reports.front();
  const double n = static_cast<double>(reports.size());
  st.end.train_seconds += slowest / 1e3;
  st.end.train_tokens += r0.tokens;
  st.end.final_loss = r0.loss;
  st.end.steps = step;
  if (val_loss >= 0) st.end.val_loss = val_loss;
  config::json_object line;
  line.add("step", step).add("loss", r0.loss).add("lr", r0.lr).add("grad_norm", r0.grad_norm)
      .add("step_ms", slowest).add("step_ms_mean", sum_ms / n)
      .add("tokens_per_s", static_cast<double>(r0.tokens) / (slowest / 1e3))
      .add("generation", st.generation).add("world_size", int64_t{st.world})
      .add("data_wait_ms", data_wait).add("comm_ms", comm / n)
      .add("unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count());
  if (val_loss >= 0) line.add("val_loss", val_loss);
  st.metrics << line.str() << '\n';
  st.metrics.flush();
  const double tok_s = static_cast<double>(st.end.train_tokens) / st.end.train_seconds;
  const double eta = st.end.train_seconds / static_cast<double>(step - st.end.start_step) *
                     static_cast<double>(spec.run.steps - step);
  const bool last = step == spec.run.steps;
  if (st.cfg.tty) {
    std::fprintf(stderr, "\rstep %lld/%lld | loss %.4f | %.1fk tok/s | %d rank%s | ETA %s   ",
                 static_cast<long long>(step), static_cast<long long>(spec.run.steps), r0.loss,
                 tok_s / 1e3, st.world, st.world == 1 ? "" : "s", format_duration(eta).c_str());
    if (last) std::fprintf(stderr, "\n");
  }
  if (val_loss >= 0) {
    if (st.cfg.tty) std::fprintf(stderr, "\n");
    st.cfg.log->info("g{} step {}: loss {:.4f} val_loss {:.4f} lr {:.3e} grad_norm {:.3f}",
                     st.generation, step, r0.loss, val_loss, r0.lr, r0.grad_norm);
  } else if (!st.cfg.tty && (step % st.log_every == 0 || step == st.end.start_step + 1)) {
    st.cfg.log->info("g{} step {}/{}: loss {:.4f} {:.0f} tok/s ETA {}", st.generation, step,
                     spec.run.steps, r0.loss, tok_s, format_duration(eta));
  }
}

// Who to blame for a hang, from the ranks' heartbeats: the first culprit (-1 when every rank
// is), and the culprits in words.
std::pair<int32_t, std::string> hang_blame(const coord_state& st,
                                           const config::fault_tolerance_section& ft) {
  const auto now = health_clock::now();
  const auto silent_after = std::chrono::milliseconds(2 * ft.heartbeat_interval_ms);
  std::vector<rank_pulse> pulses;
  for (size_t r = 0; r < st.ranks.size(); r++) {
    pulses.push_back({static_cast<int32_t>(r), st.ranks[r].last_heard, st.ranks[r].in_collective});
  }
  const std::vector<int32_t> culprits = hang_culprits(now, pulses, silent_after);
  const rank_info& first = st.ranks[static_cast<size_t>(culprits.front())];
  const bool silent = now - first.last_heard > silent_after;
  if (!silent && culprits.size() == st.ranks.size() && culprits.size() > 1) {
    return {-1, "every rank waits in a collective (a stuck collective)"};
  }
  std::string names;
  for (int32_t r : culprits) {
    names += fmt::format("{}rank {} on node '{}'", names.empty() ? "" : ", ", r,
                         node_name(st, st.ranks[static_cast<size_t>(r)].node));
  }
  if (silent) {
    return {culprits.front(),
            fmt::format("{} sent no heartbeat for {} ms (stopped or frozen)", names,
                        std::chrono::duration_cast<std::chrono::milliseconds>(now - first.last_heard).count())};
  }
  return {culprits.front(), fmt::format("{} is not in a collective while its peers wait (stuck "
                                        "in its own work)", names)};
}

void all_done(caf::event_based_actor* self, const state_ptr& sp) {
  coord_state& st = *sp;
  const msg::rank_done& lead = *st.ranks.front().done;
  for (const rank_info& r : st.ranks) {
    if (r.done->weights_sha256 != lead.weights_sha256) {
      fail(self, st, fmt::format("rank {} ends with weights {} but rank 0 with {}: the ranks "
                                 "disagree", &r - st.ranks.data(), r.done->weights_sha256,
                                 lead.weights_sha256));
      return;
    }
    st.end.blocked_ms += r.done->checkpoint_blocked_ms;
    if (r.done->stopped && st.end.stop_signal == 0) st.end.stop_signal = r.done->stop_signal;
  }
  st.end.weights_sha256 = lead.weights_sha256;
  st.end.world = st.world;
  st.end.initial_weights_sha256 = lead.initial_weights_sha256;
  if (lead.val_loss >= 0) st.end.val_loss = lead.val_loss;
  const bool finished = !lead.stopped;
  if (!finished && st.end.stop_signal == 0) st.end.stop_signal = stop_signal() != 0 ? stop_signal() : SIGTERM;
  self->request(st.cfg.catalog, std::chrono::minutes(10), msg::run_finished{lead.steps, finished})
      .then(
          [self, sp, finished, steps = lead.steps](const msg::catalog_counts& c) {
            sp->end.counts = c;
            sp->end.steps = steps;
            if (!finished) sp->end.exit_code = 128 + sp->end.stop_signal;
            end_run(self, *sp, false, finished ? "finished" : "stopped by a signal");
          },
          [self, sp](caf::error& e) { fail(self, *sp, error_text(self->system(), e)); });
}

// Starts the next generation's world on the live nodes, once the old one has ended: the
// same size when the slots allow it, larger when more slots joined (up to max_ranks),
// smaller (down to min_ranks) once replace_timeout_ms passed without a replacement.
void restart_world(caf::event_based_actor* self, coord_state& st) {
  if (st.ended) return;
  const config::run_spec& spec = st.cfg.spec;
  const int32_t usable = usable_slots(st);
  const auto now = health_clock::now();
  if (usable < st.world && !st.short_since) st.short_since = now;
  const bool wait_over =
      st.short_since &&
      now - *st.short_since >= std::chrono::milliseconds(spec.fault_tolerance.replace_timeout_ms);
  const world_decision d = next_world(usable, st.world, static_cast<int32_t>(spec.parallel.ranks),
                                      policy_of(spec), wait_over);
  if (d.what == world_decision::kind::stop) {
    fail(self, st, fmt::format("g{}: {}", st.generation, d.reason));
    return;
  }
  if (d.what == world_decision::kind::wait) {
    if (st.cfg.tty) std::fprintf(stderr, "\rrecovering (g%lld): %s   ", static_cast<long long>(st.generation), d.reason.c_str());
    st.cfg.log->debug("g{}: {}", st.generation, d.reason);
    self->delayed_send(self, k_tick, msg::end_generation{st.generation});  // again, or at a join
    return;
  }
  st.short_since.reset();
  if (d.world != st.world) {
    st.cfg.log->warn("g{}: {}", st.generation, d.reason);
    self->send(st.cfg.catalog, msg::run_event{"resize", config::json_object()
                                                            .add("generation", st.generation)
                                                            .add("from", int64_t{st.world})
                                                            .add("to", int64_t{d.world})
                                                            .add("reason", d.reason)
                                                            .str()});
    st.world = d.world;
  }
  st.ph = phase::joining;  // assign_and_start places the ranks
  assign_and_start(self, st);
  if (st.ph == phase::joining) fail(self, st, fmt::format("g{}: cannot place {} rank(s) on {} usable slot(s)", st.generation, st.world, usable));
}

// The world of this generation ends (its workers are killed, or have ended), the generation
// goes up, and the next world starts once every live node agent has confirmed it and
// `delay` has passed.
void fence_and_restart(caf::event_based_actor* self, const std::shared_ptr<coord_state>& sp,
                       std::chrono::milliseconds delay) {
  coord_state& st = *sp;
  const int64_t old = st.generation;
  st.generation++;
  st.end.generations = st.generation - st.cfg.first_generation + 1;
  st.ph = phase::recovering;
  st.steps.clear();
  for (rank_info& r : st.ranks) r = rank_info{.node = r.node};
  // Each node agent's answer, or its loss (whose own fault follows): after the last one the
  // next world starts once the backoff has passed.
  const auto replied = [self, sp, g = st.generation, delay] {
    if (sp->generation != g || --sp->fence_replies > 0) return;
    self->delayed_send(self, delay, msg::end_generation{g});
  };
  st.fence_replies = 0;
  for (node_info& n : st.nodes) {
    if (n.lost || n.gone) continue;
    st.fence_replies++;
    self->request(n.agent, std::chrono::seconds(30), msg::end_generation{old})
        .then([replied](bool) { replied(); }, [replied](caf::error&) { replied(); });
  }
  if (st.fence_replies == 0) self->delayed_send(self, delay, msg::end_generation{st.generation});
}

// A fault of the current world: the world is fenced (every worker of it ends; committed
// checkpoints stay), the generation goes up, and the same ranks start again on the live
// nodes from the newest committed checkpoint. Faults in a row without a finished step
// beyond fault_tolerance.respawn_retries stop the run.
//
// `rank` (when >= 0 and `blame`) is the culprit: a worker that exited, or the rank a hang is
// blamed on. Its slot counts the fault; past respawn_retries in a row it is quarantined
// and the next world does without it (waiting for a replacement, then shrinking). Faults
// with no culprit slot count run-wide, and past respawn_retries in a row stop the run.
void recover(caf::event_based_actor* self, const std::shared_ptr<coord_state>& sp,
             int32_t rank, int32_t node, const std::string& reason, bool blame) {
  coord_state& st = *sp;
  if (st.ended) return;
  if (st.ph == phase::joining || (st.ph == phase::stopping && !st.growing) ||
      st.ph == phase::ending) {
    fail(self, st, reason);
    return;
  }
  const config::fault_tolerance_section& ft = st.cfg.spec.fault_tolerance;
  const respawn_policy policy{static_cast<int32_t>(ft.respawn_retries),
                              std::chrono::milliseconds(ft.respawn_backoff_ms)};
  st.end.faults++;
  slot_health* health = &st.health;
  int32_t slot = -1;
  if (blame && rank >= 0 && rank < static_cast<int32_t>(st.ranks.size()) &&
      st.ranks[static_cast<size_t>(rank)].slot >= 0) {
    const rank_info& r = st.ranks[static_cast<size_t>(rank)];
    slot = r.slot;
    health = &st.nodes[static_cast<size_t>(r.node)].health[static_cast<size_t>(slot)];
  }
  *health = after_failure(*health, policy);
  if (health->quarantined && (slot < 0 || ft.respawn_retries == 0)) {
    fail(self, st, fmt::format("{}; that is {} fault(s) in a row without a finished step "
                               "(fault_tolerance.respawn_retries = {})", reason,
                               health->failures_in_row, ft.respawn_retries));
    return;
  }
  if (health->quarantined) {
    const std::string why = fmt::format(
        "slot {} of node '{}' is quarantined after {} fault(s) in a row without a finished "
        "step (fault_tolerance.respawn_retries = {}); the next worlds do without it",
        slot, node_name(st, node), health->failures_in_row, ft.respawn_retries);
    st.cfg.log->warn("g{}: {}", st.generation, why);
    self->send(st.cfg.catalog, msg::run_event{"quarantine", config::json_object()
                                                                .add("generation", st.generation)
                                                                .add("node", node_name(st, node))
                                                                .add("slot", int64_t{slot})
                                                                .add("reason", why)
                                                                .str()});
  }
  self->send(st.cfg.catalog,
             msg::run_event{"fault", config::json_object()
                                         .add("generation", st.generation)
                                         .add("rank", int64_t{rank})
                                         .add("node", node_name(st, node))
                                         .add("reason", reason)
                                         .add("steps_done", st.end.steps)
                                         .str()});
  if (!st.recovering) st.recovering = open_recovery{health_clock::now(), st.end.steps, -1, reason};
  st.growing = false;  // a fault during a growth stop: the restart decides the size anew
  if (st.cfg.tty) std::fprintf(stderr, "\nrecovering (g%lld): %s\n", static_cast<long long>(st.generation + 1), reason.c_str());
  st.cfg.log->warn("g{}: recovering: {}; the world of generation {} is fenced and starts "
                   "again from the newest committed checkpoint", st.generation + 1, reason,
                   st.generation);
  fence_and_restart(self, sp, respawn_delay(*health, policy));
}

caf::behavior coordinator_actor(caf::event_based_actor* self, coordinator_config config) {
  auto st = std::make_shared<coord_state>();
  st->cfg = std::move(config);
  st->world = static_cast<int32_t>(st->cfg.spec.parallel.ranks);
  st->generation = st->cfg.first_generation;
  st->log_every = std::max<int64_t>(1, st->cfg.spec.run.steps / 20);
  st->supervisor = self->spawn<caf::linked>(
      supervisor, caf::actor_cast<caf::actor>(self),
      std::chrono::milliseconds(st->cfg.spec.fault_tolerance.heartbeat_timeout_ms), st->cfg.log);
  // the supervisor reports lost nodes while the run lives; here the departures at its end
  self->set_down_handler([self, st](const caf::down_msg& d) {
    for (node_info& n : st->nodes) {
      if (n.agent.address() != d.source || n.gone) continue;
      n.gone = true;
      if (st->ended && std::all_of(st->nodes.begin(), st->nodes.end(),
                                   [](const node_info& x) { return x.gone; })) {
        deliver_end(self, *st);
      }
    }
  });
  self->send(self, tick_atom::value);
  return {
      [self, st](msg::node_hello& h) -> caf::result<msg::node_welcome> {
        // after the start, a node is welcome while the run has fewer slots than it can use
        const bool wanted = st->ph == phase::joining ||
                            (!st->ended && usable_slots(*st) < policy_of(st->cfg.spec).max_ranks);
        if (!wanted) {
          return caf::make_error(caf::sec::runtime_error,
                                 std::string("the run already has the nodes it needs"));
        }
        for (const node_info& n : st->nodes) {
          if (n.name == h.name) {
            return caf::make_error(caf::sec::runtime_error,
                                   fmt::format("a node named '{}' already joined: give each "
                                               "node agent its own --name", h.name));
          }
        }
        if (h.slots < 1) {
          return caf::make_error(caf::sec::runtime_error, std::string("a node needs --slots >= 1"));
        }
        const auto id = static_cast<int32_t>(st->nodes.size());
        self->monitor(h.agent);
        st->nodes.push_back({.name = h.name, .host = h.host, .slots = h.slots, .agent = h.agent,
                             .health = std::vector<slot_health>(static_cast<size_t>(h.slots))});
        self->send(st->supervisor, msg::watch_node{id, h.name, h.agent});
        st->cfg.log->info("node '{}' ({}, pid {}) joined with {} slot(s)", h.name, h.host, h.pid,
                          h.slots);
        if (st->ph == phase::joining) {
          self->send(self, tick_atom::value);  // assign once this reply is out
        } else if (st->ph == phase::recovering) {
          self->send(self, msg::end_generation{st->generation});  // a replacement: try now
        } else {
          maybe_grow(self, *st);
        }
        return msg::node_welcome{id, st->cfg.run_id, st->cfg.spec_toml_abs, st->cfg.state_dir,
                                 st->supervisor};
      },
      [self, st](msg::worker_hello& h) -> caf::result<msg::worker_setup> {
        if (h.generation != st->generation || h.rank < 0 || h.rank >= st->world ||
            st->ranks.empty() || st->ranks[static_cast<size_t>(h.rank)].worker ||
            st->ranks[static_cast<size_t>(h.rank)].node != h.node_id) {
          st->cfg.log->warn("refused a worker claiming rank {} of generation {} on node {}",
                            h.rank, h.generation, h.node_id);
          return caf::make_error(caf::sec::runtime_error,
                                 fmt::format("rank {} of generation {} on node {} is not "
                                             "expected", h.rank, h.generation, h.node_id));
        }
        st->ranks[static_cast<size_t>(h.rank)].worker = h.worker;
        st->ranks[static_cast<size_t>(h.rank)].last_heard = health_clock::now();
        self->monitor(h.worker);
        return msg::worker_setup{st->generation, st->world, st->cfg.run_id, st->cfg.spec_toml_abs,
                                 st->cfg.state_dir, st->cfg.checkpoint_root, st->cfg.catalog,
                                 st->cfg.store, st->cfg.first_generation};
      },
      [self, st](const msg::worker_ready& w) {
        if (w.generation != st->generation || st->ph != phase::starting) return;
        st->ranks[static_cast<size_t>(w.rank)].ready = true;
        if (!std::all_of(st->ranks.begin(), st->ranks.end(), [](const rank_info& r) { return r.ready; })) return;
        st->cfg.log->info("g{}: all {} rank(s) connected", st->generation, st->world);
        if (st->cfg.resuming || st->started) {
          pick_restore_point(self, st, -1);
        } else {
          start_training(self, st, 0);
        }
      },
      [self, st](const msg::restore_result& r) {
        if (r.generation != st->generation || st->ph != phase::restoring || r.step != st->restore_step) return;
        st->restore_results.push_back(r);
        if (static_cast<int32_t>(st->restore_results.size()) < st->world) return;
        const auto bad = std::find_if(st->restore_results.begin(), st->restore_results.end(),
                                      [](const msg::restore_result& x) { return !x.ok; });
        if (bad == st->restore_results.end()) {
          start_training(self, st, r.step);
          return;
        }
        const auto corrupt = std::find_if(st->restore_results.begin(), st->restore_results.end(),
                                          [](const msg::restore_result& x) { return x.corrupt; });
        const msg::restore_result& why = corrupt != st->restore_results.end() ? *corrupt : *bad;
        self->send(st->cfg.catalog, msg::restore_failed{r.step, why.corrupt, why.error});
        pick_restore_point(self, st, r.step);
      },
      [st](const msg::rank_heartbeat& h) {
        if (h.generation != st->generation || h.rank < 0 || h.rank >= static_cast<int32_t>(st->ranks.size())) return;
        rank_info& r = st->ranks[static_cast<size_t>(h.rank)];
        r.last_heard = health_clock::now();
        r.in_collective = h.in_collective;
      },
      [self, st](const msg::step_report& r) {
        if (r.generation != st->generation) return;
        auto& reports = st->steps[r.step];
        reports.push_back(r);
        if (static_cast<int32_t>(reports.size()) < st->world) return;
        record_step(*st, r.step, reports);
        st->steps.erase(r.step);
        const auto now = health_clock::now();
        if (st->stepped) {  // the first step's interval holds the restore and the warm-up
          st->step_intervals_ms.push_back(
              std::chrono::duration<double, std::milli>(now - st->last_step_at).count());
          if (st->step_intervals_ms.size() > 100) st->step_intervals_ms.erase(st->step_intervals_ms.begin());
        }
        st->stepped = true;
        st->last_step_at = now;
        st->health = after_success(st->health);
        for (node_info& n : st->nodes) {
          for (slot_health& h : n.health) h = after_success(h);
        }
        if (st->recovering) {
          const open_recovery rec = *st->recovering;
          st->recovering.reset();
          const double ms = std::chrono::duration<double, std::milli>(now - rec.since).count();
          const int64_t lost = std::max<int64_t>(0, rec.steps_done - rec.restore_step);
          st->end.recoveries++;
          st->end.steps_lost += lost;
          st->end.recovery_ms.push_back(ms);
          st->cfg.log->info("g{} step {}: recovered in {:.0f} ms from checkpoint step {} ({} "
                            "step(s) trained again) after: {}", st->generation, r.step, ms,
                            rec.restore_step, lost, rec.reason);
          self->send(st->cfg.catalog,
                     msg::run_event{"recovered", config::json_object()
                                                     .add("generation", st->generation)
                                                     .add("restore_step", rec.restore_step)
                                                     .add("steps_lost", lost)
                                                     .add("recover_ms", ms)
                                                     .add("world_size", int64_t{st->world})
                                                     .add("reason", rec.reason)
                                                     .str()});
        }
      },
      [self, st](const msg::rank_done& d) -> bool {
        if (d.generation != st->generation || d.rank < 0 || d.rank >= st->world) return false;
        st->ranks[static_cast<size_t>(d.rank)].done = d;
        if (!std::all_of(st->ranks.begin(), st->ranks.end(), [](const rank_info& r) { return r.done.has_value(); })) {
          return true;
        }
        if (st->growing && d.stopped && st->end.stop_signal == 0) {  // saved: start larger
          st->growing = false;
          st->cfg.log->info("g{}: the world stopped at step {} to grow", st->generation, d.steps);
          fence_and_restart(self, st, std::chrono::milliseconds(0));
          return true;
        }
        all_done(self, st);
        return true;
      },
      [self, st](const msg::rank_failed& f) -> bool {
        if (f.generation != st->generation || f.rank < 0 || f.rank >= st->world) return false;
        const int32_t node = st->ranks[static_cast<size_t>(f.rank)].node;
        const std::string why = fmt::format("rank {} on node '{}' failed: {}", f.rank,
                                            node_name(*st, node), f.error);
        if (!f.recoverable) {
          fail(self, *st, why);
        } else if (f.peer) {
          // a symptom: the culprit's own report (its exit, its node's loss) usually follows
          // within milliseconds and should be the one that counts
          self->delayed_send(self, std::chrono::milliseconds(st->cfg.spec.fault_tolerance.heartbeat_interval_ms),
                             grace_atom::value, f.generation, f.rank, why);
        } else {
          recover(self, st, f.rank, node, why, false);
        }
        return true;
      },
      [self, st](grace_atom, int64_t generation, int32_t rank, const std::string& why) {
        if (generation != st->generation) return;  // the culprit's own report came first
        recover(self, st, rank, st->ranks[static_cast<size_t>(rank)].node, why, false);
      },
      [self, st](const msg::fault& f) {
        if (st->ended) return;
        if (f.rank >= 0 && f.generation != st->generation) {
          st->cfg.log->debug("dropped a fault of rank {} from generation {}: {}", f.rank,
                             f.generation, f.reason);
          return;
        }
        if (f.rank < 0 && f.node_id >= 0 && f.node_id < static_cast<int32_t>(st->nodes.size())) {
          st->nodes[static_cast<size_t>(f.node_id)].lost = true;
        }
        recover(self, st, f.rank, f.node_id, f.reason, f.rank >= 0);  // a worker's exit: its slot
      },
      [self, st](const msg::end_generation& e) {  // the old world has ended: the next one
        if (e.generation == st->generation && st->ph == phase::recovering) restart_world(self, *st);
      },
      [self, st](tick_atom) {
        if (st->ended) return;
        if (st->ph == phase::joining) assign_and_start(self, *st);
        if (st->ph == phase::training) {
          const config::fault_tolerance_section& ft = st->cfg.spec.fault_tolerance;
          const auto timeout = hang_timeout(
              st->step_intervals_ms,
              {ft.hang_factor, std::chrono::milliseconds(ft.hang_grace_ms),
               std::chrono::milliseconds(ft.hang_initial_timeout_ms)});
          const auto quiet = health_clock::now() - st->last_step_at;
          if (quiet > timeout) {
            const auto [rank, why] = hang_blame(*st, ft);
            recover(self, st, rank, rank >= 0 ? st->ranks[static_cast<size_t>(rank)].node : -1,
                    fmt::format("no step finished within {} ms after step {} (the hang timeout): {}",
                                timeout.count(), st->end.steps, why),
                    rank >= 0);
          }
        }
        if (const int sig = stop_signal(); sig != 0 && st->end.stop_signal == 0) {
          st->end.stop_signal = sig;
          if (st->ph == phase::training || (st->ph == phase::stopping && st->growing)) {
            st->cfg.log->warn("g{}: signal {}: every rank finishes its step and saves it; a "
                              "second signal ends the run at once", st->generation, sig);
            if (st->ph == phase::training) {
              tell_workers(self, *st, msg::stop_training{st->generation, fmt::format("signal {}", sig)});
            }
            st->ph = phase::stopping;
            st->growing = false;  // the stop asked for growth now ends the run
          } else {
            st->end.exit_code = 128 + sig;
            if (st->started) {
              st->cfg.log->warn("g{}: signal {} while no world trains: the run ends (its "
                                "committed checkpoints are kept)", st->generation, sig);
            } else {
              st->cfg.log->warn("signal {} before training began: nothing was trained", sig);
            }
            end_run(self, *st, true, fmt::format("signal {}", sig));
            return;
          }
        }
        self->delayed_send(self, k_tick, tick_atom::value);
      },
      [self, st](linger_atom) {
        if (!st->ended) return;
        st->cfg.log->warn("node agent(s) still connected {} s after the end; leaving them",
                          std::chrono::duration_cast<std::chrono::seconds>(k_linger).count());
        deliver_end(self, *st);
      },
  };
}

// The spec as nodes and workers get it: every path absolute, resolved against this
// process's working directory.
config::run_spec with_absolute_paths(config::run_spec spec) {
  const auto abs = [](std::string& p) {
    if (!p.empty()) p = fs::absolute(p).lexically_normal().string();
  };
  abs(spec.data.train_shards);
  abs(spec.data.val_shards);
  abs(spec.model.init_from);
  abs(spec.checkpoint.dir);
  return spec;
}

}  // namespace

std::string coordinator_addr_path(const std::string& state_dir) {
  return state_dir + "/coordinator.addr";
}

int run_coordinator(const config::run_spec& spec, const coordinator_options& options) {
  install_stop_handlers();
  run_logger logger = make_run_logger("coordinator", spec.logging.level);
  auto& log = logger.log;
  std::printf("%s\n", config::format_spec_table(spec).c_str());
  std::fflush(stdout);

  // 1. Checks that need no state dir: the data.
  const int64_t V = spec.model.vocab_size, T = spec.data.seq_len;
  const auto train = engine::token_dataset::from_glob(spec.data.train_shards, V);
  const auto val = engine::token_dataset::from_glob(spec.data.val_shards, V);
  if (val.num_windows(T) < 1) {
    LZ_THROW(data_error, "the validation shards (data.val_shards = \"{}\") hold {} tokens, "
             "fewer than one sequence of data.seq_len + 1 = {}: prepare a larger validation "
             "split (lazarus data prepare --val-fraction) or lower data.seq_len",
             spec.data.val_shards, val.num_tokens(), T + 1);
  }
  {
    const engine::train_batcher plan(train, spec.run.seed, T, spec.data.slots,
                                     spec.data.micro_batch);
    log->info("data: {} train tokens in {} shard(s), {} validation tokens; {} windows of {} "
              "tokens per epoch, {} tokens per step ({:.2f} epochs in {} steps)",
              train.num_tokens(), train.paths().size(), val.num_tokens(),
              plan.plan().windows_per_epoch(), T, spec.data.slots * spec.data.micro_batch * T,
              plan.plan().epoch_of(spec.run.steps), spec.run.steps);
  }
  const engine::gpt2_config model = engine::gpt2_config::from_spec(spec);
  const int64_t P = engine::param_layout(model).total();

  // 2. The state dir: every check that can refuse this start; nothing is written.
  auto state = std::make_shared<run_state>(run_state::inspect(
      spec, options.state_dir, engine::data_fingerprint(train), options.start, *log));
  if (state->resuming()) {
    const auto finished = state->catalog().meta(k_meta_finished_steps);
    if (finished && *finished == std::to_string(spec.run.steps)) {
      log->info("the run in '{}' trained all {} steps already (summary.json has its result); "
                "raise run.steps to train it further", state->state_dir(), spec.run.steps);
      return 0;
    }
  } else {
    state->begin(spec);  // a new run: nothing to restore, so the start is accepted
  }
  const std::string dir = state->state_dir();
  int64_t first_generation = 0;
  if (state->resuming()) {
    if (const auto g = state->catalog().meta(k_meta_generation)) {
      int64_t last = 0;
      const auto [end, ec] = std::from_chars(g->data(), g->data() + g->size(), last);
      if (ec != std::errc() || end != g->data() + g->size() || last < 0) {
        LZ_THROW(lz::error, "the catalog of '{}' records generation '{}', which is not a "
                 "generation number: the catalog is damaged; see `lazarus ckpt rebuild-catalog`",
                 state->state_dir(), *g);
      }
      first_generation = last + 1;
    }
  }
  log->info("model: {} parameters (L {} C {} NH {} Vp {}), {} rank(s) over {} node(s), "
            "{} thread(s) per rank", P, spec.model.layers, spec.model.channels,
            spec.model.heads, model.padded_vocab_size, spec.parallel.ranks,
            spec.parallel.nodes, spec.parallel.threads_per_rank);

  // 3. The actors, and the address the nodes join.
  // A control link silent for the heartbeat timeout is down (a frozen or cut-off peer).
  caf_runtime runtime({.connection_timeout = std::chrono::milliseconds(
                           spec.fault_tolerance.heartbeat_timeout_ms)});
  caf::actor_system& sys = runtime.system();
  const caf::actor store = sys.spawn(store_actor);
  const caf::actor catalog = sys.spawn<caf::detached>(
      catalog_actor, catalog_actor_config{spec, state, {model_descriptor(model), P}, log});
  auto done = std::make_shared<std::promise<run_end>>();
  auto finished = done->get_future();
  coordinator_config cfg{
      .spec = spec,
      .spec_toml_abs = config::format_spec_toml(with_absolute_paths(spec)),
      .state_dir = dir,
      .checkpoint_root = state->checkpoint_root(),
      .run_id = state->run_id(),
      .resuming = state->resuming(),
      .first_generation = first_generation,
      .tty = options.progress && ::isatty(STDERR_FILENO) == 1,
      .catalog = catalog,
      .store = store,
      .log = log,
      .on_accepted = [&logger, &spec, dir] {
        attach_log_file(logger, log_path(dir), "lazarus run");
        write_text_file(spec_path(dir), config::format_spec_toml(spec));
      },
      .done = done};
  const caf::actor coordinator = sys.spawn(coordinator_actor, cfg);
  const host_port listen = parse_host_port(options.listen, "--listen");
  auto port = sys.middleman().publish(coordinator, listen.port, listen.host.c_str(), true);
  if (!port) {
    caf::anon_send_exit(coordinator, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(catalog, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    LZ_THROW(io_error, "cannot listen on {}: {}; pick another --listen address or port",
             options.listen, sys.render(port.error()));
  }
  const std::string address = fmt::format("{}:{}", listen.host, *port);
  write_text_file(coordinator_addr_path(dir), address + "\n");
  log->info("coordinator of run {} listening on {} for {} rank(s); join with: lazarus node "
            "--join {}", state->run_id(), address, spec.parallel.ranks, address);
  if (options.ready_fd >= 0) {
    const std::string line = address + "\n";
    if (::write(options.ready_fd, line.data(), line.size()) < 0) {
      log->warn("cannot tell the launcher the address: {}", std::strerror(errno));
    }
    ::close(options.ready_fd);
  }

  // 4. The run, until the coordinator actor says how it ended.
  const run_end end = finished.get();
  caf::anon_send_exit(catalog, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  std::error_code ec;
  fs::remove(coordinator_addr_path(dir), ec);
  if (end.exit_code == 1) return 1;
  if (end.exit_code > 128) {
    if (options.progress && ::isatty(STDERR_FILENO) == 1) std::fprintf(stderr, "\n");
    log->warn("g0 step {}: stopped by signal {}{}; run the same command to resume", end.steps,
              end.stop_signal,
              spec.checkpoint.every_steps > 0 ? " after saving this step"
                                              : " (checkpoint.every_steps = 0: nothing saved)");
    return 128 + end.stop_signal;
  }

  // 5. Results (every rank holds the same weights; rank 0 wrote the model and the sample)
  const double tok_s = end.train_seconds > 0
                           ? static_cast<double>(end.train_tokens) / end.train_seconds : 0.0;
  config::json_object summary;
  summary.add("name", spec.run.name).add("run_id", end.run_id).add("steps", end.steps)
      .add("final_loss", end.final_loss).add("val_loss", end.val_loss)
      .add("tokens_per_s", tok_s).add("train_seconds", end.train_seconds)
      .add("num_params", P).add("world_size", spec.parallel.ranks)
      .add("final_world_size", end.world)
      .add("nodes", spec.parallel.nodes).add("reduction", spec.parallel.reduction)
      .add("threads", spec.parallel.threads_per_rank)
      .add("resumed_from_step", end.start_step).add("checkpoints_committed", end.counts.committed)
      .add("checkpoints_failed", end.counts.failed)
      .add("checkpoint_blocked_ms", end.counts.blocked_ms + end.blocked_ms)
      .add("faults", end.faults).add("recoveries", end.recoveries)
      .add("steps_lost", end.steps_lost).add("generations", end.generations)
      .add_raw("recovery_ms", fmt::format("[{:.1f}]", fmt::join(end.recovery_ms, ",")))
      .add("initial_weights_sha256", end.initial_weights_sha256)
      .add("weights_sha256", end.weights_sha256);
  write_text_file(summary_path(dir), summary.str() + "\n");
  log->info("done: {} steps, loss {:.4f}, val_loss {:.4f}, {:.0f} tok/s, weights sha256 {}",
            end.steps, end.final_loss, end.val_loss, tok_s, end.weights_sha256);
  if (spec.run.sample_tokens > 0 && V == 256) {
    std::ifstream in(sample_path(dir));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("--- sample (%lld tokens, temperature %.2f) ---\n%s\n---\n",
                static_cast<long long>(spec.run.sample_tokens), spec.run.sample_temperature,
                text.c_str());
  }
  std::printf("%s\n", summary.str().c_str());
  return 0;
}

}  // namespace lz::actors
