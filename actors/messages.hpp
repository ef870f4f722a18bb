// messages.hpp: every message the processes of a run exchange (CAF 0.17, one type-ID block).
//
//   node agent  -> coordinator   node_hello (reply node_welcome)
//   node agent  -> supervisor    node_heartbeat, worker_exited
//   coordinator -> node agent    start_workers, end_run, end_generation (reply bool)
//   worker      -> coordinator   worker_hello (reply worker_setup), worker_ready,
//                                step_report, rank_heartbeat, rank_done, rank_failed,
//                                store_set/store_get
//   coordinator -> worker        restore_from (reply restore_result), begin_training,
//                                stop_training
//   worker      -> catalog       save_begin (reply bool), shard_done, shard_fail
//   worker      -> data feeder   batch_request (reply batch)
//
// Every message about training carries the generation it belongs to; a receiver drops one
// from another generation (and logs it at debug level). Strings are paths and texts only:
// tensors and checkpoint bytes never travel as actor messages (the communicator and the
// disk carry them); a batch of token ids does (tens of KiB).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

namespace lz::msg {

// --- node agent <-> coordinator -----------------------------------------------------------

struct node_hello {
  std::string name;           // unique per run: --name, or the host name
  std::string host;           // the address its workers' communicators bind to
  int32_t slots = 0;          // rank slots (GPUs, or CPU rank places) it offers
  int32_t pid = 0;
  caf::actor agent;           // the node supervisor actor
};

struct node_welcome {
  int32_t node_id = 0;
  std::string run_id;
  std::string spec_toml;      // the resolved spec, paths absolute
  std::string state_dir;      // absolute
  caf::actor supervisor;      // where heartbeats and worker exits go
};

struct node_heartbeat {
  int32_t node_id = 0;
  int64_t sent_unix_ms = 0;
};

struct start_workers {
  int64_t generation = 0;
  int32_t world = 0;
  std::vector<int32_t> ranks;  // the ranks this node runs in this generation
  std::vector<int32_t> slots;  // the slot of each (0 .. --slots - 1)
  std::vector<int32_t> adopt_pids;   // workers of an earlier world that carry on here
  std::vector<int32_t> adopt_ranks;  // as these ranks
};

struct worker_exited {
  int32_t node_id = 0;
  int64_t generation = 0;
  int32_t rank = 0;
  int32_t pid = 0;
  int32_t exit_code = -1;     // when it exited
  int32_t signal = 0;         // when a signal killed it
};

struct end_run {
  std::string reason;
  bool kill_workers = false;  // true: at once; false: they have stopped or will by themselves
};

// --- worker <-> coordinator ---------------------------------------------------------------

struct worker_hello {
  int64_t generation = 0;
  int32_t rank = 0;
  int32_t node_id = 0;
  int32_t pid = 0;
  caf::actor worker;          // the rank worker actor
};

struct worker_setup {
  int64_t generation = 0;
  int32_t world = 0;
  std::string run_id;
  std::string spec_toml;      // the resolved spec, paths absolute
  std::string state_dir;      // absolute: rank 0 writes final_model.bin and sample.txt there
  std::string checkpoint_root;
  caf::actor catalog;         // the committer of this run
  caf::actor store;           // rendezvous of the generation's communicator
  int64_t first_generation = 0;  // of this coordinator start (faults name worlds from it)
  int32_t replica_to = 0;     // the rank that keeps this rank's in-memory copy
  int32_t replica_from = 0;   // the rank whose copy this rank keeps
};

// --- the warm restart: survivors of a world carry on in the next one ----------------------

// The coordinator ends the worker's world: it aborts its communicator and stops its step
// loop, keeps its state and in-memory copies, and answers with rank_fenced; or, when
// `leave`, exits (its node was lost).
struct fence {
  int64_t generation = 0;     // the next one
  bool leave = false;
};

// An in-memory copy a worker holds (checkpoint::held_range; the rank is filled in by the
// coordinator for the next world).
struct wire_held {
  int32_t rank = 0;
  int32_t which = 0;
  int64_t step = -1;
  int64_t range_begin = 0;
  int64_t range_end = 0;
};

struct rank_fenced {
  int64_t generation = 0;
  int32_t pid = 0;
  std::vector<wire_held> held;
};

// A survivor's place in the next world (fresh workers get it in worker_setup).
struct join_world {
  int64_t generation = 0;
  int32_t rank = 0;
  int32_t world = 0;
  int32_t replica_to = 0;
  int32_t replica_from = 0;
};

// Every rank of the world restores the state after `step` from the in-memory copies `held`.
struct restore_memory {
  int64_t generation = 0;
  int64_t step = 0;
  std::vector<wire_held> held;
};

// A rank connected its communicator and built its session.
struct worker_ready {
  int64_t generation = 0;
  int32_t rank = 0;
};

// One shard of a committed checkpoint, as the catalog recorded it.
struct wire_shard {
  int32_t rank = 0;
  std::string file;           // relative to the checkpoint root
  uint64_t bytes = 0;
  uint64_t header_xxh3 = 0;
  int64_t range_begin = 0;
  int64_t range_end = 0;
};

struct restore_from {
  int64_t generation = 0;
  int64_t step = 0;
  int64_t ckpt_generation = 0;
  int32_t world_size = 0;     // at save
  std::string dir;            // relative to the checkpoint root
  std::vector<wire_shard> shards;
};

struct restore_result {
  int64_t generation = 0;
  int32_t rank = 0;
  int64_t step = 0;
  bool ok = false;
  bool corrupt = false;       // proof of damage (checksum, header, truncation)
  std::string error;
};

struct begin_training {
  int64_t generation = 0;
  int64_t start_step = 0;     // the first step trains step start_step + 1
};

struct stop_training {
  int64_t generation = 0;
  std::string reason;
};

// Sent every heartbeat interval by a rank's control actor, which runs beside the step
// thread: a rank that stops sending is stopped or frozen; one that sends while its steps do
// not finish is stuck in its own work, or (in_collective) waiting for its peers.
struct rank_heartbeat {
  int64_t generation = 0;
  int32_t rank = 0;
  bool in_collective = false;
};

struct step_report {
  int64_t generation = 0;
  int32_t rank = 0;
  int64_t step = 0;           // steps done after this one
  double loss = 0.0;
  double lr = 0.0;
  double grad_norm = 0.0;
  double step_ms = 0.0;
  double data_wait_ms = 0.0;  // of step_ms, waiting for the feeder
  double comm_ms = 0.0;       // of step_ms, in collectives
  int64_t tokens = 0;         // in the global batch
  double val_loss = -1.0;     // rank 0 on evaluation steps; < 0: none
};

struct rank_done {
  int64_t generation = 0;
  int32_t rank = 0;
  int64_t steps = 0;          // steps done when it stopped
  bool stopped = false;       // stopped early (a stop_training), not finished
  std::string weights_sha256;
  double checkpoint_blocked_ms = 0.0;
  double val_loss = -1.0;     // rank 0, after the last step
  std::string initial_weights_sha256;  // rank 0: the weights it started training from
  int32_t stop_signal = 0;    // the signal this worker itself got (SIGTERM), when it stopped
};

struct rank_failed {
  int64_t generation = 0;
  int32_t rank = 0;
  int64_t step = 0;
  std::string error;
  bool recoverable = false;   // a lost peer or service (the next generation may succeed)
  bool peer = false;          // a collective failed: a symptom of a peer's fault, not this rank's
};

// --- rendezvous store (for the communicator) ----------------------------------------------

struct store_set {
  std::string key;
  std::vector<char> value;
};

struct store_get {
  std::string key;
  int64_t timeout_ms = 0;
};

// --- checkpoints: a rank's checkpointer <-> the catalog ------------------------------------

struct save_begin {
  int64_t generation = 0;
  int64_t step = 0;
  int32_t world = 0;
};

struct shard_done {
  int64_t generation = 0;
  int64_t step = 0;
  wire_shard shard;
};

struct shard_fail {
  int64_t generation = 0;
  int64_t step = 0;
  int32_t rank = 0;
  std::string error;
};

// --- coordinator <-> supervisor (in the coordinator process) -------------------------------

struct watch_node {
  int32_t node_id = 0;
  std::string name;
  caf::actor agent;
};

// Something of the run died or went silent: the coordinator decides what follows.
struct fault {
  int64_t generation = -1;    // of the rank; -1 for a node
  int32_t rank = -1;          // -1: the whole node
  int32_t node_id = -1;
  std::string reason;         // names the node, the rank and the signal or the silence
  int32_t pid = 0;            // the worker's, when a worker exited
};

// --- coordinator -> catalog actor (in the coordinator process) ----------------------------

// The next restore point older than `before_step`; answered with a restore_choice.
struct restore_pick {
  int64_t before_step = 0;
};

struct restore_choice {
  bool found = false;
  restore_from point;                // generation left 0: the coordinator sets it
  std::vector<std::string> passed_over;  // "step N: why", newest first
  bool any_checkpoints = false;      // the catalog lists checkpoints (usable or not)
};

// The ranks could not load `step`: recorded (proof of damage marks it corrupt).
struct restore_failed {
  int64_t step = 0;
  bool corrupt = false;
  std::string error;
};

// The start is accepted: the catalog actor writes what a start writes (run_state::begin),
// makes the committer and cleans up after a crash; answered with the run id.
struct start_accepted {
  int64_t generation = 0;
  int64_t start_step = 0;
  int32_t world = 0;
};

// The run is over: wait for the save in flight, record the end; answered with the counts.
struct run_finished {
  int64_t steps = 0;
  bool finished = false;   // all of run.steps done (not stopped early)
};

// A fault or a recovery decision, for the catalog's events (`json` is the record).
struct run_event {
  std::string kind;          // "fault", "recovered"
  std::string json;
};
// Ends every worker of generations up to `generation` on a node agent; answered (true) once
// all of them have been reaped.
struct end_generation {
  int64_t generation = 0;
  std::vector<int32_t> keep_pids;  // survivors: they stay, as workers of generation + 1
};

// SIGKILL to these workers of a node agent (a hung culprit, a survivor that did not answer
// its fence): their peers' collectives then fail at once.
struct kill_workers {
  std::vector<int32_t> pids;
};

// The newest committed checkpoint's step (-1: none); answered with an int64_t.
struct newest_step {
  int32_t unused = 0;
};
struct catalog_counts {
  int64_t committed = 0;
  int64_t failed = 0;
  int64_t skipped = 0;
  double blocked_ms = 0.0;
};

// --- data feeder --------------------------------------------------------------------------

struct batch_request {
  int64_t step = 0;
  int64_t slot_begin = 0;
  int64_t slot_end = 0;
};

struct batch {
  int64_t step = 0;
  int64_t slot_begin = 0;
  int64_t slot_end = 0;
  std::vector<int32_t> inputs;   // (slots, B, T)
  std::vector<int32_t> targets;  // (slots, B, T)
};

// --- inspection (serialisation) -----------------------------------------------------------

template <class F>
typename F::result_type inspect(F& f, node_hello& x) {
  return f(caf::meta::type_name("node_hello"), x.name, x.host, x.slots, x.pid, x.agent);
}
template <class F>
typename F::result_type inspect(F& f, node_welcome& x) {
  return f(caf::meta::type_name("node_welcome"), x.node_id, x.run_id, x.spec_toml, x.state_dir,
           x.supervisor);
}
template <class F>
typename F::result_type inspect(F& f, node_heartbeat& x) {
  return f(caf::meta::type_name("node_heartbeat"), x.node_id, x.sent_unix_ms);
}
template <class F>
typename F::result_type inspect(F& f, start_workers& x) {
  return f(caf::meta::type_name("start_workers"), x.generation, x.world, x.ranks, x.slots,
           x.adopt_pids, x.adopt_ranks);
}
template <class F>
typename F::result_type inspect(F& f, worker_exited& x) {
  return f(caf::meta::type_name("worker_exited"), x.node_id, x.generation, x.rank, x.pid,
           x.exit_code, x.signal);
}
template <class F>
typename F::result_type inspect(F& f, end_run& x) {
  return f(caf::meta::type_name("end_run"), x.reason, x.kill_workers);
}
template <class F>
typename F::result_type inspect(F& f, worker_hello& x) {
  return f(caf::meta::type_name("worker_hello"), x.generation, x.rank, x.node_id, x.pid,
           x.worker);
}
template <class F>
typename F::result_type inspect(F& f, worker_setup& x) {
  return f(caf::meta::type_name("worker_setup"), x.generation, x.world, x.run_id, x.spec_toml,
           x.state_dir, x.checkpoint_root, x.catalog, x.store, x.first_generation, x.replica_to,
           x.replica_from);
}
template <class F>
typename F::result_type inspect(F& f, fence& x) {
  return f(caf::meta::type_name("fence"), x.generation, x.leave);
}
template <class F>
typename F::result_type inspect(F& f, wire_held& x) {
  return f(caf::meta::type_name("wire_held"), x.rank, x.which, x.step, x.range_begin, x.range_end);
}
template <class F>
typename F::result_type inspect(F& f, rank_fenced& x) {
  return f(caf::meta::type_name("rank_fenced"), x.generation, x.pid, x.held);
}
template <class F>
typename F::result_type inspect(F& f, join_world& x) {
  return f(caf::meta::type_name("join_world"), x.generation, x.rank, x.world, x.replica_to,
           x.replica_from);
}
template <class F>
typename F::result_type inspect(F& f, restore_memory& x) {
  return f(caf::meta::type_name("restore_memory"), x.generation, x.step, x.held);
}
template <class F>
typename F::result_type inspect(F& f, kill_workers& x) {
  return f(caf::meta::type_name("kill_workers"), x.pids);
}
template <class F>
typename F::result_type inspect(F& f, newest_step& x) {
  return f(caf::meta::type_name("newest_step"), x.unused);
}
template <class F>
typename F::result_type inspect(F& f, worker_ready& x) {
  return f(caf::meta::type_name("worker_ready"), x.generation, x.rank);
}
template <class F>
typename F::result_type inspect(F& f, wire_shard& x) {
  return f(caf::meta::type_name("wire_shard"), x.rank, x.file, x.bytes, x.header_xxh3,
           x.range_begin, x.range_end);
}
template <class F>
typename F::result_type inspect(F& f, restore_from& x) {
  return f(caf::meta::type_name("restore_from"), x.generation, x.step, x.ckpt_generation,
           x.world_size, x.dir, x.shards);
}
template <class F>
typename F::result_type inspect(F& f, restore_result& x) {
  return f(caf::meta::type_name("restore_result"), x.generation, x.rank, x.step, x.ok,
           x.corrupt, x.error);
}
template <class F>
typename F::result_type inspect(F& f, begin_training& x) {
  return f(caf::meta::type_name("begin_training"), x.generation, x.start_step);
}
template <class F>
typename F::result_type inspect(F& f, stop_training& x) {
  return f(caf::meta::type_name("stop_training"), x.generation, x.reason);
}
template <class F>
typename F::result_type inspect(F& f, rank_heartbeat& x) {
  return f(caf::meta::type_name("rank_heartbeat"), x.generation, x.rank, x.in_collective);
}
template <class F>
typename F::result_type inspect(F& f, step_report& x) {
  return f(caf::meta::type_name("step_report"), x.generation, x.rank, x.step, x.loss, x.lr,
           x.grad_norm, x.step_ms, x.data_wait_ms, x.comm_ms, x.tokens, x.val_loss);
}
template <class F>
typename F::result_type inspect(F& f, rank_done& x) {
  return f(caf::meta::type_name("rank_done"), x.generation, x.rank, x.steps, x.stopped,
           x.weights_sha256, x.checkpoint_blocked_ms, x.val_loss, x.initial_weights_sha256,
           x.stop_signal);
}
template <class F>
typename F::result_type inspect(F& f, rank_failed& x) {
  return f(caf::meta::type_name("rank_failed"), x.generation, x.rank, x.step, x.error,
           x.recoverable, x.peer);
}
template <class F>
typename F::result_type inspect(F& f, store_set& x) {
  return f(caf::meta::type_name("store_set"), x.key, x.value);
}
template <class F>
typename F::result_type inspect(F& f, store_get& x) {
  return f(caf::meta::type_name("store_get"), x.key, x.timeout_ms);
}
template <class F>
typename F::result_type inspect(F& f, save_begin& x) {
  return f(caf::meta::type_name("save_begin"), x.generation, x.step, x.world);
}
template <class F>
typename F::result_type inspect(F& f, shard_done& x) {
  return f(caf::meta::type_name("shard_done"), x.generation, x.step, x.shard);
}
template <class F>
typename F::result_type inspect(F& f, shard_fail& x) {
  return f(caf::meta::type_name("shard_fail"), x.generation, x.step, x.rank, x.error);
}
template <class F>
typename F::result_type inspect(F& f, watch_node& x) {
  return f(caf::meta::type_name("watch_node"), x.node_id, x.name, x.agent);
}
template <class F>
typename F::result_type inspect(F& f, fault& x) {
  return f(caf::meta::type_name("fault"), x.generation, x.rank, x.node_id, x.reason, x.pid);
}
template <class F>
typename F::result_type inspect(F& f, restore_pick& x) {
  return f(caf::meta::type_name("restore_pick"), x.before_step);
}
template <class F>
typename F::result_type inspect(F& f, restore_choice& x) {
  return f(caf::meta::type_name("restore_choice"), x.found, x.point, x.passed_over,
           x.any_checkpoints);
}
template <class F>
typename F::result_type inspect(F& f, restore_failed& x) {
  return f(caf::meta::type_name("restore_failed"), x.step, x.corrupt, x.error);
}
template <class F>
typename F::result_type inspect(F& f, start_accepted& x) {
  return f(caf::meta::type_name("start_accepted"), x.generation, x.start_step, x.world);
}
template <class F>
typename F::result_type inspect(F& f, run_finished& x) {
  return f(caf::meta::type_name("run_finished"), x.steps, x.finished);
}
template <class F>
typename F::result_type inspect(F& f, run_event& x) {
  return f(caf::meta::type_name("run_event"), x.kind, x.json);
}
template <class F>
typename F::result_type inspect(F& f, end_generation& x) {
  return f(caf::meta::type_name("end_generation"), x.generation, x.keep_pids);
}
template <class F>
typename F::result_type inspect(F& f, catalog_counts& x) {
  return f(caf::meta::type_name("catalog_counts"), x.committed, x.failed, x.skipped,
           x.blocked_ms);
}
template <class F>
typename F::result_type inspect(F& f, batch_request& x) {
  return f(caf::meta::type_name("batch_request"), x.step, x.slot_begin, x.slot_end);
}
template <class F>
typename F::result_type inspect(F& f, batch& x) {
  return f(caf::meta::type_name("batch"), x.step, x.slot_begin, x.slot_end, x.inputs,
           x.targets);
}

}  // namespace lz::msg

CAF_BEGIN_TYPE_ID_BLOCK(lz, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(lz, (lz::msg::node_hello))
  CAF_ADD_TYPE_ID(lz, (lz::msg::node_welcome))
  CAF_ADD_TYPE_ID(lz, (lz::msg::node_heartbeat))
  CAF_ADD_TYPE_ID(lz, (lz::msg::start_workers))
  CAF_ADD_TYPE_ID(lz, (lz::msg::worker_exited))
  CAF_ADD_TYPE_ID(lz, (lz::msg::end_run))
  CAF_ADD_TYPE_ID(lz, (lz::msg::worker_hello))
  CAF_ADD_TYPE_ID(lz, (lz::msg::worker_setup))
  CAF_ADD_TYPE_ID(lz, (lz::msg::worker_ready))
  CAF_ADD_TYPE_ID(lz, (lz::msg::wire_shard))
  CAF_ADD_TYPE_ID(lz, (lz::msg::restore_from))
  CAF_ADD_TYPE_ID(lz, (lz::msg::restore_result))
  CAF_ADD_TYPE_ID(lz, (lz::msg::begin_training))
  CAF_ADD_TYPE_ID(lz, (lz::msg::stop_training))
  CAF_ADD_TYPE_ID(lz, (lz::msg::step_report))
  CAF_ADD_TYPE_ID(lz, (lz::msg::rank_heartbeat))
  CAF_ADD_TYPE_ID(lz, (lz::msg::rank_done))
  CAF_ADD_TYPE_ID(lz, (lz::msg::rank_failed))
  CAF_ADD_TYPE_ID(lz, (lz::msg::store_set))
  CAF_ADD_TYPE_ID(lz, (lz::msg::store_get))
  CAF_ADD_TYPE_ID(lz, (lz::msg::save_begin))
  CAF_ADD_TYPE_ID(lz, (lz::msg::shard_done))
  CAF_ADD_TYPE_ID(lz, (lz::msg::shard_fail))
  CAF_ADD_TYPE_ID(lz, (lz::msg::watch_node))
  CAF_ADD_TYPE_ID(lz, (lz::msg::fault))
  CAF_ADD_TYPE_ID(lz, (lz::msg::restore_pick))
  CAF_ADD_TYPE_ID(lz, (lz::msg::restore_choice))
  CAF_ADD_TYPE_ID(lz, (lz::msg::restore_failed))
  CAF_ADD_TYPE_ID(lz, (lz::msg::start_accepted))
  CAF_ADD_TYPE_ID(lz, (lz::msg::run_finished))
  CAF_ADD_TYPE_ID(lz, (lz::msg::catalog_counts))
  CAF_ADD_TYPE_ID(lz, (lz::msg::batch_request))
  CAF_ADD_TYPE_ID(lz, (lz::msg::batch))
  CAF_ADD_TYPE_ID(lz, (std::vector<char>))
  CAF_ADD_TYPE_ID(lz, (lz::msg::run_event))
  CAF_ADD_TYPE_ID(lz, (lz::msg::end_generation))
  CAF_ADD_TYPE_ID(lz, (lz::msg::fence))
  CAF_ADD_TYPE_ID(lz, (lz::msg::wire_held))
  CAF_ADD_TYPE_ID(lz, (lz::msg::rank_fenced))
  CAF_ADD_TYPE_ID(lz, (lz::msg::join_world))
  CAF_ADD_TYPE_ID(lz, (lz::msg::restore_memory))
  CAF_ADD_TYPE_ID(lz, (lz::msg::newest_step))
  CAF_ADD_TYPE_ID(lz, (lz::msg::kill_workers))
CAF_END_TYPE_ID_BLOCK(lz)
