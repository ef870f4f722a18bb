// worker.cpp: `lazarus worker` (see worker.hpp).
#include "actors/worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/caf_runtime.hpp"
#include "actors/data_feeder.hpp"
#include "actors/messages.hpp"
#include "actors/model_descriptor.hpp"
#include "actors/process_util.hpp"
#include "actors/rank_session.hpp"
#include "actors/remote_committer.hpp"
#include "actors/run_files.hpp"
#include "actors/run_outputs.hpp"
#include "actors/stop_signal.hpp"
#include "actors/store_actor.hpp"
#include "actors/wire_records.hpp"
#include "checkpoint/fault_hook.hpp"
#include "checkpoint/llmc_format.hpp"
#include "checkpoint/restore.hpp"
#include "config/run_spec.hpp"
#include "engine/digest.hpp"
#include "engine/gloo_communicator.hpp"
#include "engine/sample.hpp"
#include "engine/timed_communicator.hpp"
#include "engine/window_record.hpp"

namespace lz::actors {

namespace {

using clock_type = std::chrono::steady_clock;
using pulse_atom = caf::atom_constant<caf::atom("pulse")>;
constexpr auto k_control_timeout = std::chrono::minutes(30);  // no word from the coordinator

struct coordinator_lost {
  std::string why;
};
struct fenced {
  int64_t generation = 0;
  bool leave = false;
};
using control = std::variant<msg::restore_from, msg::restore_memory, msg::begin_training,
                             msg::join_world, fenced, coordinator_lost>;

// What the rank worker actor hands to the step thread, in order.
class control_inbox {
public:
  void push(control c, bool front = false) {
    {
      std::lock_guard lock(mutex_);
      if (front) {
        items_.push_front(std::move(c));
      } else {
        items_.push_back(std::move(c));
      }
    }
    changed_.notify_all();
  }
  control pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return !items_.empty(); })) {
      return coordinator_lost{fmt::format("no word from the coordinator within {} s",
                                          std::chrono::duration_cast<std::chrono::seconds>(timeout).count())};
    }
    control c = std::move(items_.front());
    items_.pop_front();
    return c;
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<control> items_;
};

struct worker_shared {
  control_inbox inbox;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> generation{0};  // the newest world this worker was told of
  std::atomic<int32_t> rank{-1};       // its rank there (-1: between worlds)
  // A stop asked of this rank: by the coordinator, or by a SIGTERM to this process.
  bool stop_asked() const { return stop.load() || stop_signal() != 0; }

  // The communicator of the world under way (none between worlds): aborted by a fence or a
  // lost coordinator, from the actor's thread.
  void publish(engine::timed_communicator* c) {
    std::lock_guard lock(comm_mutex);
    comm = c;
  }
  void abort_comm() {
    std::lock_guard lock(comm_mutex);
    if (comm != nullptr) comm->abort();
  }
  bool in_collective() {
    std::lock_guard lock(comm_mutex);
    return comm != nullptr && comm->in_collective();
  }

private:
  std::mutex comm_mutex;
  engine::timed_communicator* comm = nullptr;
};

// Publishes a communicator for its lifetime.
class published_comm {
public:
  published_comm(worker_shared& sh, engine::timed_communicator& c) : sh_(sh) { sh_.publish(&c); }
  ~published_comm() { sh_.publish(nullptr); }
  published_comm(const published_comm&) = delete;
  published_comm& operator=(const published_comm&) = delete;

private:
  worker_shared& sh_;
};

// The world a worker is a rank of.
struct world_place {
  int64_t generation = 0;
  int32_t rank = 0, world = 0, replica_to = 0, replica_from = 0;
};

// The rank worker actor: the coordinator's control messages, answered at once.
caf::behavior rank_worker(caf::event_based_actor* self, std::shared_ptr<worker_shared> sh,
                          caf::actor coordinator, std::shared_ptr<spdlog::logger> log) {
  self->monitor(coordinator);
  self->set_down_handler([sh, log](const caf::down_msg& d) {
    const std::string why = "the coordinator is gone (" + to_string(d.reason) + ")";
    log->error("{}", why);
    sh->stop = true;
    sh->abort_comm();
    sh->inbox.push(coordinator_lost{why});
  });
  const auto current = [sh, log](int64_t g, const char* what) {
    if (g == sh->generation) return true;
    log->debug("dropped {} of generation {} (this rank is in {})", what, g, sh->generation.load());
    return false;
  };
  return {
      [sh, current](msg::restore_from& r) {
        if (current(r.generation, "restore_from")) sh->inbox.push(std::move(r));
      },
      [sh, current](msg::restore_memory& r) {
        if (current(r.generation, "restore_memory")) sh->inbox.push(std::move(r));
      },
      [sh, current](msg::begin_training& b) {
        if (current(b.generation, "begin_training")) sh->inbox.push(b);
      },
      [sh, current](msg::join_world& j) {
        if (current(j.generation, "join_world")) sh->inbox.push(j);
      },
      [sh, log](const msg::fence& f) {  // the world ends: every later message is of f's
        if (f.generation <= sh->generation) {
          log->debug("dropped a fence of generation {} (this rank is in {})", f.generation,
                     sh->generation.load());
          return;
        }
        if (f.leave) {  // fenced out: this process goes now, whatever its step thread does,
          // so that its peers' collectives fail at once
          log->warn("g{}: the coordinator fences this worker out: exiting", f.generation);
          log->flush();
          ::_exit(0);
        }
        sh->generation = f.generation;
        sh->rank = -1;
        sh->abort_comm();
        sh->inbox.push(fenced{f.generation, false});
      },
      [self, sh, coordinator](pulse_atom, int64_t interval_ms) {  // rank heartbeats
        if (const int32_t rank = sh->rank; rank >= 0) {
          self->send(coordinator, msg::rank_heartbeat{sh->generation, rank, sh->in_collective()});
        }
        self->delayed_send(self, std::chrono::milliseconds(interval_ms), pulse_atom::value, interval_ms);
      },
      [sh, current, log](const msg::stop_training& s) {
        if (!current(s.generation, "stop_training")) return;
        log->info("stop asked ({}): stopping after this step", s.reason);
        sh->stop = true;
      },
  };
}

// This rank's ranges of checkpoint `r`: the whole parameter vector and its own moments.
msg::restore_result load_ranges(rank_session& session, const msg::restore_from& r,
                                const std::string& root, const checkpoint::restore_expectation& expect) {
  msg::restore_result out{r.generation, session.rank(), r.step, false, false, ""};
  const checkpoint::checkpoint_record record = from_wire(r);
  checkpoint::fault_point("worker.restore", r.step, session.rank());
  try {
    checkpoint::shard_set set = checkpoint::open_checkpoint(record, root);
    checkpoint::check_expectation(set, root, expect);
    for (const auto& t : session.restore_targets()) set.read(t.name, t.range, t.out);
    out.ok = true;
  } catch (const checkpoint::corrupt_shard& e) {
    out.corrupt = true;
    out.error = fmt::format("shard '{}' tensor '{}': {}", e.path(), e.tensor(), e.what());
  } catch (const lz::error& e) {
    out.error = e.what();
  }
  return out;
}

struct loop_result {
  int64_t steps = 0;
  bool stopped = false;
  double val_loss = NAN;
};

// The training loop of this rank, from `start_step` on: every rank steps together; rank 0
// evaluates; every rank saves its part of each checkpoint; a stop asked of any rank stops
// all of them at the same step boundary, after saving that step.
loop_result train(rank_session& session, const config::run_spec& spec, int64_t start_step,
                  const world_place& place, checkpoint::memory_snapshot& snap,
                  const engine::token_dataset* val, const worker_shared& sh,
                  const engine::timed_communicator& comm, const feeder_batches& feeder,
                  engine::window_record& windows, const caf::actor& coordinator,
                  spdlog::logger& log) {
  const bool lead = session.rank() == 0;
  const int64_t B = spec.data.micro_batch, T = spec.data.seq_len;
  loop_result out;
  out.steps = start_step;
  std::vector<std::string> nonfinite;  // the evidence: discarded tries of this step
  for (int64_t step = start_step; step < spec.run.steps; step++) {
    const auto t0 = clock_type::now();
    const double comm0 = comm.busy_ms(), data0 = feeder.wait_ms();
    const engine::step_result r = session.step(step);
    if (r.discarded) {  // every rank sees the same loss and norm, so every rank decides alike
      nonfinite.push_back(r.why);
      if (static_cast<int64_t>(nonfinite.size()) >= spec.fault_tolerance.max_nonfinite_steps) {
        LZ_THROW(lz::error, "step {} was non-finite {} time(s) in a row ({}); the same exact "
                 "step gives the same result, so the run stops: lower optimizer.lr or raise "
                 "optimizer.warmup_steps, then run the same command to resume", step + 1,
                 nonfinite.size(), fmt::join(nonfinite, "; "));
      }
      log.warn("g{} step {}: {}: the step is discarded on every rank and tried again ({} of "
               "{})", place.generation, step + 1, r.why, nonfinite.size(),
               spec.fault_tolerance.max_nonfinite_steps);
      step--;
      continue;
    }
    nonfinite.clear();
    windows.finished(step);
    const double step_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    const bool last = step + 1 == spec.run.steps;
    // the in-memory copies of this step, before the step is reported: a fault after the
    // report finds the step restorable from memory
    const int64_t every = spec.fault_tolerance.replica_every_steps;
    if (every > 0 && (step + 1) % every == 0) {
      session.keep_copy(snap, step + 1, place.replica_to, place.replica_from);
    }
    msg::step_report report{place.generation, session.rank(), step + 1, r.loss, r.lr, r.grad_norm,
                            step_ms, feeder.wait_ms() - data0, comm.busy_ms() - comm0, r.tokens,
                            -1.0};
    if (lead && val != nullptr &&
        (last || (spec.run.val_every_steps > 0 && (step + 1) % spec.run.val_every_steps == 0))) {
      const auto stop = [&] {
        checkpoint::fault_point("eval.batch", step + 1);
        return sh.stop_asked();
      };
      out.val_loss = engine::evaluate(session.model(), *val, spec.run.val_batches, B, T, stop)
                         .value_or(NAN);
      if (!std::isnan(out.val_loss)) report.val_loss = out.val_loss;
    }
    caf::anon_send(coordinator, report);
    out.steps = step + 1;
    checkpoint::fault_point("train.after_step", step + 1, session.rank());
    bool saved = false;
    if (spec.checkpoint.every_steps > 0 && (step + 1) % spec.checkpoint.every_steps == 0) {
      session.save_after(step + 1, last);
      saved = true;
    }
    if (last) break;
    if (session.any_rank_stops(sh.stop_asked())) {
      session.finish_open_snapshot();  // no update will fill it: a copy does
      if (spec.checkpoint.every_steps > 0 && !saved) session.save_after(step + 1, true);
      out.stopped = true;
      break;
    }
  }
  session.wait_checkpoint_idle();
  return out;
}

// Sends `m` and waits (at most 30 s) for the coordinator to acknowledge it, so that the
// last words of this process are not lost in its exit.
template <class M>
void tell_and_wait(caf::actor_system& sys, const caf::actor& coordinator, const M& m,
                   spdlog::logger& log) {
  caf::scoped_actor self{sys};
  self->request(coordinator, std::chrono::seconds(30), m)
      .receive([](bool) {},
               [&](caf::error& e) { log.warn("the coordinator did not acknowledge: {}", sys.render(e)); });
}

// The copies this worker holds, for the coordinator (which fills in the next world's rank).
std::vector<msg::wire_held> held_copies(const checkpoint::memory_snapshot& snap) {
  std::vector<msg::wire_held> out;
  if (snap.own.held()) out.push_back({-1, 0, snap.own.step, snap.own.range.begin, snap.own.range.end});
  if (snap.replica.held()) {
    out.push_back({-1, 1, snap.replica.step, snap.replica.range.begin, snap.replica.range.end});
  }
  return out;
}

// The world ended under this rank (a fence, or its communicator failed): waits for the
// fence, answers it with the copies this worker holds, and returns its place in the next
// world; none when it is to leave or the coordinator is gone.
std::optional<world_place> await_next_world(worker_shared& sh, const checkpoint::memory_snapshot& snap,
                                            int32_t old_rank, const caf::actor& coordinator,
                                            spdlog::logger& log) {
  for (;;) {
    control c = sh.inbox.pop(k_control_timeout);
    if (auto* lost = std::get_if<coordinator_lost>(&c)) {
      log.error("{}", lost->why);
      return std::nullopt;
    }
    if (auto* f = std::get_if<fenced>(&c)) {
      if (f->leave) {
        log.warn("g{}: the coordinator fences this worker out (its node is lost): exiting", f->generation);
        return std::nullopt;
      }
      log.info("g{}: fenced; waiting for a place in the next world, holding {} in-memory "
               "cop{} (own of step {}, replica of step {})", f->generation,
               held_copies(snap).size(), held_copies(snap).size() == 1 ? "y" : "ies",
               snap.own.step, snap.replica.step);
      checkpoint::fault_point("worker.fenced", snap.own.step, old_rank);
      caf::anon_send(coordinator, msg::rank_fenced{f->generation, static_cast<int32_t>(::getpid()),
                                                   held_copies(snap)});
      continue;
    }
    if (auto* j = std::get_if<msg::join_world>(&c)) {
      if (j->generation == sh.generation) {
        return world_place{j->generation, j->rank, j->world, j->replica_to, j->replica_from};
      }
    }
    // anything else belongs to a world that has ended
  }
}

// What became of a world for this worker.
enum class world_end { finished, fenced, fatal };

}  // namespace

int run_worker(const worker_options& options) {
  // A terminal's Ctrl-C reaches the whole process group: the coordinator decides how the
  // run stops. A SIGTERM sent to this worker alone (a scheduler stopping its container)
  // makes this rank ask every rank to stop at the next step boundary, after saving it.
  install_stop_handlers();
  ::signal(SIGINT, SIG_IGN);
  die_with_parent();
  auto log = spdlog::stderr_color_mt(fmt::format("rank{}", options.rank));
  log->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %^%l%$ %v");
  log->flush_on(spdlog::level::warn);
  caf_runtime runtime({});
  caf::actor_system& sys = runtime.system();
  const caf::actor coordinator = connect_remote(
      sys, parse_host_port(options.coordinator, "--coordinator"), std::chrono::seconds(30),
      "coordinator");
  auto sh = std::make_shared<worker_shared>();
  sh->generation = options.generation;
  const caf::actor self_actor = sys.spawn(rank_worker, sh, coordinator, log);
  const auto leave = [&](int code) {
    caf::anon_send_exit(self_actor, caf::exit_reason::user_shutdown);
    return code;
  };

  // 1. hello: the run's spec and where everything is
  msg::worker_setup setup;
  {
    caf::scoped_actor self{sys};
    std::string failure;
    self->request(coordinator, std::chrono::seconds(60),
                  msg::worker_hello{options.generation, options.rank, options.node_id,
                                    static_cast<int32_t>(::getpid()), self_actor})
        .receive([&](msg::worker_setup& s) { setup = std::move(s); },
                 [&](caf::error& e) { failure = error_text(sys, e); });
    if (!failure.empty()) {
      log->error("the coordinator refused rank {} of generation {}: {}", options.rank,
                 options.generation, failure);
      return leave(1);
    }
  }
  const config::run_spec spec = config::parse_spec(setup.spec_toml, "the coordinator's spec");
  log->set_level(spdlog::level::from_str(spec.logging.level));
  caf::anon_send(self_actor, pulse_atom::value, spec.fault_tolerance.heartbeat_interval_ms);
  const auto timeout = std::chrono::minutes(10);  // a stuck peer ends the run, never hangs it
  std::optional<caf::actor> feeder;
  std::optional<engine::token_dataset> val;  // rank 0's, loaded once
  checkpoint::memory_snapshot snap;          // outlives the worlds
  world_place place{setup.generation, options.rank, setup.world, setup.replica_to,
                    setup.replica_from};

  // 2. one world after another: this worker survives the faults of its peers
  for (;;) {
    sh->rank = place.rank;
    log->set_pattern(fmt::format("%Y-%m-%d %H:%M:%S.%e rank{} %^%l%$ %v", place.rank));
    // An injected fault (LAZARUS_FAULT) fires in the world it names, counted from this
    // start of the run (0 by default): the worlds after it do not repeat it.
    checkpoint::set_fault_generation(place.generation - setup.first_generation);
    world_end ended = world_end::fatal;
    try {
      if (!feeder) {
        feeder = connect_remote(sys, {"127.0.0.1", options.feeder_port}, std::chrono::seconds(30),
                                "node's data feeder");
      }
      // the communicator of this generation, the data feeder and the session
      remote_store store(sys, setup.store);
      engine::timed_communicator comm(engine::connect_gloo(
          store, place.rank, place.world, place.generation, {.host = options.host, .timeout = timeout}));
      const published_comm published(*sh, comm);
      if (sh->generation != place.generation) comm.abort();  // fenced while connecting
      const engine::slot_node slots = engine::slot_range(spec.data.slots, place.world, place.rank);
      feeder_batches batches(sys, *feeder, slots.begin, slots.end, spec.data.micro_batch,
                             spec.data.seq_len, 2, timeout);
      engine::window_record windows(batches, windows_path(setup.state_dir, place.generation, place.rank),
                                    place.generation, spec.data.micro_batch * spec.data.seq_len);
      // The committer outlives the session: a save still in flight when this world fails
      // reports to it while the session's destructor waits for that save.
      remote_committer committer(sys, setup.catalog, setup.checkpoint_root, place.generation,
                                 std::chrono::minutes(10));
      rank_session session(spec, comm, windows, log);
      session.backend().use_in_this_thread();
      if (place.rank == 0 && !val) {
        val.emplace(engine::token_dataset::from_glob(spec.data.val_shards, spec.model.vocab_size));
      }
      const engine::token_dataset* val_set = place.rank == 0 ? &*val : nullptr;
      session.attach_checkpointer(committer, {.async = spec.checkpoint.async}, setup.run_id,
                                  place.generation);
      caf::anon_send(coordinator, msg::worker_ready{place.generation, place.rank});
      const checkpoint::restore_expectation expect{model_descriptor(session.model().config()),
                                                   session.model().num_params()};

      // 3. restore (from disk as often as the coordinator picks a checkpoint, or from the
      // ranks' memory), then train
      bool restored = false;
      for (;;) {
        control c = sh->inbox.pop(k_control_timeout);
        if (auto* lost = std::get_if<coordinator_lost>(&c)) LZ_THROW(io_error, "{}", lost->why);
        if (std::holds_alternative<fenced>(c)) {
          sh->inbox.push(std::move(c), true);  // for await_next_world
          LZ_THROW(engine::comm_error, "g{}: fenced before training", place.generation);
        }
        if (auto* r = std::get_if<msg::restore_from>(&c)) {
          const msg::restore_result res = load_ranges(session, *r, setup.checkpoint_root, expect);
          restored = res.ok;
          caf::anon_send(coordinator, res);
          continue;
        }
        if (auto* m = std::get_if<msg::restore_memory>(&c)) {
          std::vector<checkpoint::held_range> held;
          for (const msg::wire_held& h : m->held) {
            held.push_back({h.rank, h.which, h.step, {h.range_begin, h.range_end}});
          }
          const auto t0 = clock_type::now();
          checkpoint::fault_point("worker.restore", m->step, place.rank);
          session.restore_from_memory(snap, m->step, held);
          restored = true;
          log->info("g{}: restored step {} from the ranks' memory in {:.0f} ms", place.generation,
                    m->step, std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
          caf::anon_send(coordinator, msg::restore_result{place.generation, place.rank, m->step, true, false, ""});
          continue;
        }
        if (!std::holds_alternative<msg::begin_training>(c)) continue;  // of an ended world
        const auto& begin = std::get<msg::begin_training>(c);
        if (begin.start_step == 0 || !restored) session.init_weights();
        const int64_t P = session.model().num_params();
        const std::string initial_sha = engine::sha256_hex(session.model().params(),
                                                           static_cast<size_t>(P) * sizeof(float));
        const loop_result done = train(session, spec, begin.start_step, place, snap, val_set, *sh,
                                       comm, batches, windows, coordinator, *log);
        msg::rank_done report{place.generation, place.rank, done.steps, done.stopped, "",
                              session.checkpoint_stats().blocked_ms, -1.0, initial_sha,
                              stop_signal()};
        report.weights_sha256 = engine::sha256_hex(session.model().params(),
                                                   static_cast<size_t>(P) * sizeof(float));
        if (place.rank == 0 && !done.stopped) {  // rank 0 alone writes the model and a sample
          double val_loss = done.val_loss;
          if (std::isnan(val_loss) && val_set) {
            val_loss = engine::evaluate(session.model(), *val_set, spec.run.val_batches,
                                        spec.data.micro_batch, spec.data.seq_len,
                                        [&] { return sh->stop_asked(); }).value_or(NAN);
          }
          if (!std::isnan(val_loss)) report.val_loss = val_loss;
          checkpoint::write_llmc_model(final_model_path(setup.state_dir),
                                       llmc_header_of(session.model().config()),
                                       session.model().params(), P);
          if (spec.run.sample_tokens > 0 && spec.model.vocab_size == 256) {
            write_text_file(sample_path(setup.state_dir),
                            engine::sample_text(session.model(), "And ", spec.run.sample_tokens,
                                                spec.run.sample_temperature, spec.run.seed));
          }
        }
        session.detach_checkpointer();
        tell_and_wait(sys, coordinator, report, *log);
        ended = world_end::finished;
        break;
      }
    } catch (const std::exception& e) {
      // Fenced, or a lost peer or service (communicator, feeder, catalog): the next
      // generation may succeed, and this worker takes part in it with its state. Anything
      // else (bad data, a spec the data cannot serve, non-finite steps in a row) would fail
      // the same way again.
      const bool recoverable = dynamic_cast<const io_error*>(&e) != nullptr;
      const bool peer = dynamic_cast<const engine::comm_error*>(&e) != nullptr;
      if (sh->generation != place.generation && peer) {
        log->info("g{}: the world of generation {} ended under this rank: {}", sh->generation.load(),
                  place.generation, e.what());
      } else {
        log->error("rank {}: {}", place.rank, e.what());
        tell_and_wait(sys, coordinator,
                      msg::rank_failed{place.generation, place.rank, -1, e.what(), recoverable, peer},
                      *log);
      }
      ended = recoverable ? world_end::fenced : world_end::fatal;
    }
    if (ended == world_end::finished) return leave(0);
    if (ended == world_end::fatal) return leave(1);
    const std::optional<world_place> next = await_next_world(*sh, snap, place.rank, coordinator, *log);
    if (!next) return leave(sh->stop_asked() ? 1 : 0);
    place = *next;
  }
}

}  // namespace lz::actors
