// coordinator_recovery.cpp: what the coordinator does about a fault, and about a world that
// can grow (see coordinator_state.hpp and DESIGN.md, section 2).
#include <algorithm>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "actors/coordinator_state.hpp"
#include "config/json_writer.hpp"

namespace lz::actors::coordination {

// More slots than ranks (a node joined): the world stops at the next step boundary, saves
// that step, and starts again larger from it. Only with checkpoints, which carry the state
// across.
void maybe_grow(caf::event_based_actor* self, coord_state& st) {
  const config::run_spec& spec = st.cfg.spec;
  if (st.ph != phase::training || st.growing || spec.checkpoint.every_steps == 0) return;
  const int32_t usable = usable_slots(st);
  const int32_t target = std::min(usable, policy_of(spec).max_ranks);
  if (target <= st.world) return;
  st.growing = true;
  st.ph = phase::stopping;
  st.cfg.log->info("g{}: {} usable slot(s) for {} rank(s): the world stops after this step, "
                   "saves it and grows to {} rank(s)", st.generation, usable, st.world, target);
  tell_workers(self, st, msg::stop_training{st.generation, "the world grows"});
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

// Starts the next generation's world on the live nodes, once the old one has ended: the
// same size when the slots allow it, larger when more slots joined (up to max_ranks),
// smaller (down to min_ranks) once replace_timeout_ms passed without a replacement.
void restart_world(caf::event_based_actor* self, coord_state& st) {
  if (st.ended) return;
  st.restart_due = true;
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

namespace {

// The fence is over (every survivor answered, or the wait ran out): every node agent ends
// the workers of the old world but the survivors, and the next world starts once every live
// agent has confirmed it and the backoff has passed.
void end_old_world(caf::event_based_actor* self, const state_ptr& sp) {
  coord_state& st = *sp;
  st.fence_open = false;
  const int64_t old = st.generation - 1;
  std::vector<int32_t> keep;
  for (const survivor& s : st.survivors) keep.push_back(s.pid);
  // Each node agent's answer, or its loss (whose own fault follows): after the last one the
  // next world starts once the backoff has passed.
  const auto replied = [self, sp, g = st.generation] {
    if (sp->generation != g || --sp->fence_replies > 0) return;
    self->delayed_send(self, sp->restart_delay, msg::end_generation{g});
  };
  st.fence_replies = 0;
  for (node_info& n : st.nodes) {
    if (!n.live()) continue;
    st.fence_replies++;
    self->request(n.agent, std::chrono::seconds(30), msg::end_generation{old, keep})
        .then([replied](bool) { replied(); }, [replied](caf::error&) { replied(); });
  }
  if (st.fence_replies == 0) self->delayed_send(self, st.restart_delay, msg::end_generation{st.generation});
}

void end_fence_if_answered(caf::event_based_actor* self, const state_ptr& sp) {
  const coord_state& st = *sp;
  if (!st.fence_open) return;
  if (std::all_of(st.survivors.begin(), st.survivors.end(), [](const survivor& s) { return s.fenced; })) {
    end_old_world(self, sp);
  }
}

}  // namespace

// The world of this generation ends and the generation goes up. When `warm`, its workers
// but the culprit (`culprit_pid`) and those on lost nodes are fenced: each aborts its
// communicator, keeps its state and in-memory copies, and carries on in the next world.
// Otherwise (or a survivor that does not answer in time) the node agents end them. The
// next world starts when every live node agent has confirmed and `delay` has passed.
void fence_and_restart(caf::event_based_actor* self, const std::shared_ptr<coord_state>& sp,
                       std::chrono::milliseconds delay, bool warm, int32_t culprit_pid) {
  coord_state& st = *sp;
  self->send(st.cfg.catalog, msg::end_generation{st.generation, {}});  // its waiting saves
  st.generation++;
  st.end.generations = st.generation - st.cfg.first_generation + 1;
  st.ph = phase::recovering;
  st.steps.clear();
  std::vector<survivor> next;
  const auto consider = [&](survivor s) {
    if (!s.worker || s.pid == 0) return;
    if (s.pid == culprit_pid) {  // it goes at once, by its own hand or its node agent's
      self->send(s.worker, msg::fence{st.generation, true});
      if (st.nodes[static_cast<size_t>(s.node)].live()) {
        self->send(st.nodes[static_cast<size_t>(s.node)].agent, msg::kill_workers{{s.pid}});
      }
      return;
    }
    if (!st.nodes[static_cast<size_t>(s.node)].live()) {
      // its node agent cannot end it: the worker is told to leave
      self->send(s.worker, msg::fence{st.generation, true});
      return;
    }
    if (warm) next.push_back(std::move(s));
  };
  for (const rank_info& r : st.ranks) consider({r.pid, r.node, r.slot, r.worker, false, {}});
  for (survivor& s : st.survivors) consider({s.pid, s.node, s.slot, s.worker, false, {}});
  st.survivors = std::move(next);
  for (const survivor& s : st.survivors) self->send(s.worker, msg::fence{st.generation, false});
  for (rank_info& r : st.ranks) r = rank_info{.node = r.node};
  st.restart_delay = delay;
  st.fence_open = true;
  st.restart_due = false;
  if (st.survivors.empty()) {
    end_old_world(self, sp);
    return;
  }
  // A survivor answers within milliseconds unless its step thread is inside a long
  // computation: it gets the heartbeat timeout plus the slowest step seen.
  double slowest_ms = 0.0;
  for (double ms : st.step_intervals_ms) slowest_ms = std::max(slowest_ms, ms);
  const auto wait = std::chrono::milliseconds(st.cfg.spec.fault_tolerance.heartbeat_timeout_ms +
                                              static_cast<int64_t>(slowest_ms));
  self->delayed_send(self, wait, fence_atom::value, st.generation);
}

void survivor_answered(caf::event_based_actor* self, const state_ptr& sp, const msg::rank_fenced& f) {
  coord_state& st = *sp;
  if (f.generation != st.generation || !st.fence_open) return;
  for (survivor& s : st.survivors) {
    if (s.pid != f.pid) continue;
    s.fenced = true;
    s.held = f.held;
  }
  end_fence_if_answered(self, sp);
}

void fence_timed_out(caf::event_based_actor* self, const state_ptr& sp, int64_t generation) {
  coord_state& st = *sp;
  if (generation != st.generation || !st.fence_open) return;
  for (const survivor& s : st.survivors) {
    if (s.fenced) continue;
    st.cfg.log->warn("g{}: the worker with pid {} on node '{}' did not answer the fence in "
                     "time: its node agent ends it", st.generation, s.pid, node_name(st, s.node));
    self->send(st.nodes[static_cast<size_t>(s.node)].agent, msg::kill_workers{{s.pid}});
  }
  std::erase_if(st.survivors, [](const survivor& s) { return !s.fenced; });
  end_old_world(self, sp);
}

void survivor_lost(caf::event_based_actor* self, const state_ptr& sp, int32_t pid,
                   const std::string& why) {
  coord_state& st = *sp;
  const auto gone = std::erase_if(st.survivors, [pid](const survivor& s) { return s.pid == pid; });
  if (gone == 0) return;
  st.cfg.log->warn("g{}: a survivor of the last world is gone before the next began: {}",
                   st.generation, why);
  self->send(st.cfg.catalog, msg::run_event{"fault", config::json_object()
                                                         .add("generation", st.generation)
                                                         .add("pid", int64_t{pid})
                                                         .add("reason", why)
                                                         .add("steps_done", st.end.steps)
                                                         .str()});
  st.end.faults++;
  end_fence_if_answered(self, sp);
}

// A fault of the current world: the world is fenced (every worker of it ends; committed
// checkpoints stay), the generation goes up, and the next world (restart_world decides its
// size) starts on the live nodes from the newest committed checkpoint.
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
  int32_t culprit_pid = 0;
  if (rank >= 0 && rank < static_cast<int32_t>(st.ranks.size()) && blame) {
    culprit_pid = st.ranks[static_cast<size_t>(rank)].pid;
  }
  st.cfg.log->warn("g{}: recovering: {}; the world of generation {} is fenced, its survivors "
                   "carry on in the next one, which restores the newest step its ranks hold "
                   "in memory or the newest committed checkpoint", st.generation + 1, reason,
                   st.generation);
  fence_and_restart(self, sp, respawn_delay(*health, policy), true, culprit_pid);
}

}  // namespace lz::actors::coordination
