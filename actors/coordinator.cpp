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
#include "actors/coordinator_state.hpp"
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

using namespace coordination;

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
        for (const node_info& n : st->nodes) {  // a lost node's name may come back (a restart)
          if (n.name == h.name && n.live()) {
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
          // a replacement: try now, unless the old world is still being fenced (its
          // survivors' answers and the backoff come first)
          if (st->restart_due) self->send(self, msg::end_generation{st->generation});
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
        rank_info& info = st->ranks[static_cast<size_t>(h.rank)];
        info.worker = h.worker;
        info.pid = h.pid;
        info.last_heard = health_clock::now();
        self->monitor(h.worker);
        return msg::worker_setup{st->generation, st->world, st->cfg.run_id, st->cfg.spec_toml_abs,
                                 st->cfg.state_dir, st->cfg.checkpoint_root, st->cfg.catalog,
                                 st->cfg.store, st->cfg.first_generation,
                                 st->replica_to[static_cast<size_t>(h.rank)],
                                 st->replica_from[static_cast<size_t>(h.rank)]};
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
        if (st->memory_restore) {  // the disk path, from the newest checkpoint
          st->cfg.log->warn("g{}: the restore of step {} from memory failed on rank {}: {}; "
                            "restoring from disk", st->generation, r.step, why.rank, why.error);
          pick_restore_point(self, st, INT64_MAX);
          return;
        }
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
          st->cfg.log->info("g{} step {}: recovered in {:.0f} ms from step {} ({}; {} step(s) "
                            "trained again) after: {}", st->generation, r.step, ms,
                            rec.restore_step, rec.source, lost, rec.reason);
          self->send(st->cfg.catalog,
                     msg::run_event{"recovered", config::json_object()
                                                     .add("generation", st->generation)
                                                     .add("restore_step", rec.restore_step)
                                                     .add("restore_from", rec.source)
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
          fence_and_restart(self, st, std::chrono::milliseconds(0), false, 0);
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
      [self, st](const msg::rank_fenced& f) { survivor_answered(self, st, f); },
      [self, st](fence_atom, int64_t generation) { fence_timed_out(self, st, generation); },
      [self, st](const msg::fault& f) {
        if (st->ended) return;
        if (f.pid != 0 && std::any_of(st->survivors.begin(), st->survivors.end(),
                                      [&](const survivor& s) { return s.pid == f.pid; })) {
          survivor_lost(self, st, f.pid, f.reason);  // no world has begun: the fence goes on
          return;
        }
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
  const caf::actor store = sys.spawn(store_actor, store_limits{});
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
      .num_params = P,
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
  runtime.exit_code_on_hang(end.exit_code == 1 ? 1 : end.exit_code > 128 ? 128 + end.stop_signal : 0);
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
