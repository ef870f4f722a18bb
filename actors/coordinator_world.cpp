// coordinator_world.cpp: a world's start, its training and the end of the run (see
// coordinator_state.hpp).
#include <algorithm>
#include <csignal>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "actors/caf_runtime.hpp"
#include "actors/coordinator_state.hpp"
#include "actors/rank_assignment.hpp"
#include "actors/run_files.hpp"
#include "actors/run_outputs.hpp"
#include "actors/stop_signal.hpp"
#include "checkpoint/memory_snapshot.hpp"
#include "config/json_writer.hpp"

namespace lz::actors::coordination {

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


// The result goes to the main thread; the supervisor ends with this actor (a normal exit
// does not travel along a link, and the actor system waits for every actor).
//
// Every actor handle the state holds goes with it: the state lives on in this actor's
// handlers until the actor object is destroyed, and a strong handle kept there (the
// supervisor's holds this actor in turn) would keep the detached catalog actor alive, so
// that the actor system waits for it forever at exit.
void deliver_end(caf::event_based_actor* self, coord_state& st) {
  self->send_exit(st.supervisor, caf::exit_reason::user_shutdown);
  st.cfg.done->set_value(st.end);
  st.supervisor = nullptr;
  st.cfg.catalog = nullptr;
  st.cfg.store = nullptr;
  for (node_info& n : st.nodes) n.agent = nullptr;
  for (rank_info& r : st.ranks) r.worker = nullptr;
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
            if (st.recovering) {
              st.recovering->restore_step = start_step;
              st.recovering->source = st.memory_restore ? "memory" : start_step > 0 ? "disk" : "start";
            }
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

namespace {

void pick_from_disk(caf::event_based_actor* self, const state_ptr& sp, int64_t before_step) {
  sp->memory_restore = false;
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

}  // namespace

// The restore point of a new world: the newest step whose in-memory copies the world's
// ranks hold in full (the fast path), unless a newer checkpoint is committed; else the
// newest committed checkpoint older than `before_step` (-1: any) whose shards check out.
void pick_restore_point(caf::event_based_actor* self, const state_ptr& sp, int64_t before_step) {
  coord_state& st = *sp;
  std::vector<checkpoint::held_range> held;
  for (size_t r = 0; r < st.ranks.size(); r++) {
    for (const msg::wire_held& h : st.ranks[r].held) {
      held.push_back({static_cast<int32_t>(r), h.which, h.step, {h.range_begin, h.range_end}});
    }
  }
  const std::optional<int64_t> memory =
      before_step < 0 ? checkpoint::newest_covered_step(held, st.cfg.num_params) : std::nullopt;
  if (!memory) {
    pick_from_disk(self, sp, before_step);
    return;
  }
  self->request(st.cfg.catalog, std::chrono::minutes(1), msg::newest_step{})
      .then(
          [self, sp, step = *memory, held](int64_t committed) {
            coord_state& now = *sp;
            if (committed > step) {
              now.cfg.log->info("g{}: the ranks hold step {} in memory, checkpoint step {} is "
                               "newer: restoring from disk", now.generation, step, committed);
              pick_from_disk(self, sp, -1);
              return;
            }
            msg::restore_memory m{now.generation, step, {}};
            for (const checkpoint::held_range& h : held) {
              if (h.step == step) m.held.push_back({h.rank, h.which, h.step, h.range.begin, h.range.end});
            }
            now.cfg.log->info("g{}: restoring step {} from {} in-memory cop{} of the ranks",
                             now.generation, step, m.held.size(), m.held.size() == 1 ? "y" : "ies");
            now.ph = phase::restoring;
            now.restore_step = step;
            now.restore_results.clear();
            now.memory_restore = true;
            tell_workers(self, now, m);
          },
          [self, sp](caf::error& e) { fail(self, *sp, error_text(self->system(), e)); });
}

// Places the ranks of this generation's world on the usable slots: the survivors of the last
// world carry on where they are (with a new rank), fresh workers fill the other slots.
void assign_and_start(caf::event_based_actor* self, coord_state& st) {
  std::vector<int32_t> slots;
  for (const node_info& n : st.nodes) slots.push_back(n.usable());
  const std::vector<int32_t> node_of = assign_ranks(slots, st.world);
  if (node_of.empty()) return;  // not enough slots yet
  st.ranks.assign(static_cast<size_t>(st.world), rank_info{});
  std::vector<survivor> waiting = std::move(st.survivors);
  st.survivors.clear();
  std::sort(waiting.begin(), waiting.end(), [](const survivor& a, const survivor& b) {
    return std::tie(a.node, a.slot) < std::tie(b.node, b.slot);
  });
  std::vector<bool> placed(waiting.size(), false);
  std::map<int32_t, msg::start_workers> by_node;
  std::map<int32_t, std::vector<int32_t>> taken;  // node -> slots of the survivors placed
  for (int32_t r = 0; r < st.world; r++) {
    const int32_t node = node_of[static_cast<size_t>(r)];
    rank_info& info = st.ranks[static_cast<size_t>(r)];
    info.node = node;
    for (size_t i = 0; i < waiting.size(); i++) {
      if (placed[i] || waiting[i].node != node) continue;
      placed[i] = true;
      info.slot = waiting[i].slot;
      info.worker = waiting[i].worker;
      info.pid = waiting[i].pid;
      info.held = waiting[i].held;
      info.last_heard = health_clock::now();
      taken[node].push_back(info.slot);
      by_node[node].adopt_pids.push_back(info.pid);
      by_node[node].adopt_ranks.push_back(r);
      break;
    }
  }
  for (int32_t r = 0; r < st.world; r++) {  // fresh workers in the node's free slots
    rank_info& info = st.ranks[static_cast<size_t>(r)];
    if (info.worker) continue;
    const auto& health = st.nodes[static_cast<size_t>(info.node)].health;
    std::vector<int32_t>& used = taken[info.node];
    int32_t slot = 0;
    while (health[static_cast<size_t>(slot)].quarantined ||
           std::find(used.begin(), used.end(), slot) != used.end()) {
      slot++;
    }
    used.push_back(slot);
    info.slot = slot;
    by_node[info.node].ranks.push_back(r);
    by_node[info.node].slots.push_back(slot);
  }
  // every rank's buddy, on another node where one exists
  const int32_t shift = checkpoint::replica_shift(node_of);
  st.replica_to.assign(static_cast<size_t>(st.world), 0);
  st.replica_from.assign(static_cast<size_t>(st.world), 0);
  for (int32_t r = 0; r < st.world; r++) {
    st.replica_to[static_cast<size_t>(r)] = (r + shift) % st.world;
    st.replica_from[static_cast<size_t>(r)] = (r - shift + st.world) % st.world;
  }
  st.ph = phase::starting;
  st.memory_restore = false;
  for (auto& [node, s] : by_node) {
    std::vector<int32_t> all = s.ranks;
    all.insert(all.end(), s.adopt_ranks.begin(), s.adopt_ranks.end());
    std::sort(all.begin(), all.end());
    st.cfg.log->info("g{}: node '{}' runs rank(s) {}{}", st.generation, node_name(st, node),
                     fmt::join(all, ", "),
                     s.adopt_ranks.empty() ? ""
                                           : fmt::format(" (carried on: {})", fmt::join(s.adopt_ranks, ", ")));
    s.generation = st.generation;
    s.world = st.world;
    self->send(st.nodes[static_cast<size_t>(node)].agent, s);
  }
  for (int32_t r = 0; r < st.world; r++) {
    const rank_info& info = st.ranks[static_cast<size_t>(r)];
    if (!info.worker) continue;
    self->send(info.worker, msg::join_world{st.generation, r, st.world,
                                            st.replica_to[static_cast<size_t>(r)],
                                            st.replica_from[static_cast<size_t>(r)]});
  }
  for (size_t i = 0; i < waiting.size(); i++) {  // a smaller world: the others leave
    if (!placed[i]) self->send(waiting[i].worker, msg::join_world{st.generation, -1, st.world, 0, 0});
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

}  // namespace lz::actors::coordination
