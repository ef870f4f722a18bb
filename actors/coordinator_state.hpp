// coordinator_state.hpp: the coordinator actor's state and the steps of its run, shared by
// its files (not a public interface):
//   coordinator.cpp           the actor's message handlers and `lazarus coordinator`
//   coordinator_world.cpp     starting a world, training, recording steps, ending the run
//   coordinator_recovery.cpp  faults: fencing, respawn and quarantine, shrinking and growing
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/logger.h>

#include "actors/health.hpp"
#include "actors/messages.hpp"
#include "actors/recovery_plan.hpp"
#include "config/run_spec.hpp"

namespace lz::actors::coordination {

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using linger_atom = caf::atom_constant<caf::atom("linger")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using fence_atom = caf::atom_constant<caf::atom("fence")>;

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
  int32_t pid = 0;
  std::vector<msg::wire_held> held;     // the in-memory copies it brings from an earlier world
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
  std::string source;             // where the restore point came from: memory, disk, start
};

// A worker of an ended world that carries on into the next one (a warm restart): its
// process, its state and its in-memory copies stay.
struct survivor {
  int32_t pid = 0;
  int32_t node = -1, slot = -1;
  caf::actor worker;
  bool fenced = false;            // it answered the fence
  std::vector<msg::wire_held> held;
};

struct coordinator_config {
  config::run_spec spec;          // as the user gave it (recorded in the catalog)
  std::string spec_toml_abs;      // what nodes and workers get: paths absolute
  std::string state_dir, checkpoint_root, run_id;
  int64_t num_params = 0;         // of the model: the extent of the in-memory copies
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
  std::vector<survivor> survivors;  // fenced (or being fenced) for the next world
  bool fence_open = false;        // survivors are still answering the fence
  bool restart_due = false;       // the old world has ended and the backoff passed: the next
                                  // world starts as soon as the slots allow (a join retries)
  std::chrono::milliseconds restart_delay{0};
  std::vector<int32_t> replica_to, replica_from;  // per rank of this world
  bool memory_restore = false;    // the restore under way is from the ranks' memory
};

using state_ptr = std::shared_ptr<coord_state>;

// Every message to all workers of this generation.
template <class M>
void tell_workers(caf::event_based_actor* self, coord_state& st, const M& m) {
  for (const rank_info& r : st.ranks) {
    if (r.worker) self->send(r.worker, m);
  }
}

// --- coordinator_world.cpp ----------------------------------------------------------------
int32_t usable_slots(const coord_state& st);
world_policy policy_of(const config::run_spec& spec);
std::string node_name(const coord_state& st, int32_t node);
void deliver_end(caf::event_based_actor* self, coord_state& st);
void end_run(caf::event_based_actor* self, coord_state& st, bool kill, const std::string& why);
void fail(caf::event_based_actor* self, coord_state& st, const std::string& why);
void start_training(caf::event_based_actor* self, const state_ptr& sp, int64_t start_step);
void pick_restore_point(caf::event_based_actor* self, const state_ptr& sp, int64_t before_step);
void assign_and_start(caf::event_based_actor* self, coord_state& st);
void record_step(coord_state& st, int64_t step, const std::vector<msg::step_report>& reports);
void all_done(caf::event_based_actor* self, const state_ptr& sp);

// --- coordinator_recovery.cpp -------------------------------------------------------------
void maybe_grow(caf::event_based_actor* self, coord_state& st);
std::pair<int32_t, std::string> hang_blame(const coord_state& st,
                                           const config::fault_tolerance_section& ft);
void restart_world(caf::event_based_actor* self, coord_state& st);
void fence_and_restart(caf::event_based_actor* self, const state_ptr& sp,
                       std::chrono::milliseconds delay, bool warm, int32_t culprit_pid);
void survivor_answered(caf::event_based_actor* self, const state_ptr& sp, const msg::rank_fenced& f);
void fence_timed_out(caf::event_based_actor* self, const state_ptr& sp, int64_t generation);
void survivor_lost(caf::event_based_actor* self, const state_ptr& sp, int32_t pid, const std::string& why);
void recover(caf::event_based_actor* self, const state_ptr& sp, int32_t rank, int32_t node,
             const std::string& reason, bool blame);

}  // namespace lz::actors::coordination
