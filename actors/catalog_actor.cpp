// catalog_actor.cpp: see catalog_actor.hpp.
#include "actors/catalog_actor.hpp"

#include <climits>
#include <optional>
#include <vector>

#include "actors/messages.hpp"
#include "actors/wire_records.hpp"
#include "checkpoint/committer.hpp"
#include "config/json_writer.hpp"

namespace lz::actors {

namespace {

struct waiting_begin {
  msg::save_begin request;
  caf::typed_response_promise<bool> promise;
};

struct catalog_state {
  catalog_actor_config cfg;
  std::optional<checkpoint::committer> committer;
  int64_t generation = -1;                   // of the accepted start
  std::vector<waiting_begin> waiting;        // saves due while one is in flight
  std::vector<checkpoint::restore_failure> failures;  // restore points passed over
};

// Answers the saves that waited for the one in flight, now that it is over.
void answer_waiting(catalog_state& st) {
  std::vector<waiting_begin> still;
  for (auto& w : st.waiting) {
    const auto go = st.committer->try_begin(w.request.step, w.request.world, w.request.generation);
    if (go) {
      w.promise.deliver(*go);
    } else {
      still.push_back(std::move(w));
    }
  }
  st.waiting = std::move(still);
}

// Whether a shard report may reach the committer.
bool expected_report(catalog_state& st, int64_t generation, int64_t step, const char* what) {
  if (!st.committer || generation != st.generation) {
    st.cfg.log->debug("catalog: dropped a {} of step {} from generation {} (this is {})", what,
                      step, generation, st.generation);
    return false;
  }
  if (st.committer->step_in_flight() != step) {
    st.cfg.log->warn("catalog: dropped a {} of step {}, which is not the save in flight", what,
                     step);
    return false;
  }
  return true;
}


// Runs `f`; an lz::error becomes an error reply carrying its message (error_text() reads it).
template <class T, class F>
caf::result<T> guarded(F&& f) {
  try {
    return f();
  } catch (const lz::error& e) {
    return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
  }
}

msg::restore_choice pick(catalog_state& st, const msg::restore_pick& p) {
  run_state& state = *st.cfg.state;
  msg::restore_choice c;
  c.any_checkpoints = !state.catalog().list().empty();
  const auto point = checkpoint::next_restore_point(
      state.catalog(), state.checkpoint_root(), st.cfg.expect,
      p.before_step < 0 ? INT64_MAX : p.before_step, st.failures, *st.cfg.log);
  if (point) {
    if (point->meta.data_seed != st.cfg.spec.run.seed) {
      LZ_THROW(spec_error, "the checkpoints in '{}' were trained with run.seed {}, this spec "
               "says {}: resuming would change the data order; use the same run.seed or "
               "another --state-dir", state.checkpoint_root(), point->meta.data_seed,
               st.cfg.spec.run.seed);
    }
    c.found = true;
    c.point = to_wire(point->record);
    if (point->record.world_size != 1 || point->meta.world_size != 1) {
      st.cfg.log->info("checkpoint: step {} was saved by {} ranks; resharded by range",
                       point->record.step, point->record.world_size);
    }
  } else if (c.any_checkpoints) {
    checkpoint::restore_outcome outcome;
    outcome.failures = st.failures;
    state.require_restored(outcome);  // refuses, naming every checkpoint and why
  }
  for (const auto& f : st.failures) c.passed_over.push_back(fmt::format("step {}: {}", f.step, f.error));
  return c;
}

std::string accept(catalog_state& st, const msg::start_accepted& a) {
  run_state& state = *st.cfg.state;
  const config::run_spec& spec = st.cfg.spec;
  if (state.resuming() && !st.committer) state.begin(spec);
  if (st.committer && a.generation > st.generation) {
    // A new generation after a failure: every writer of the old one has stopped.
    const std::string why = fmt::format("its world (generation {}) failed before every shard "
                                        "was durable", st.generation);
    if (const auto step = st.committer->abandon_older_than(a.generation, why)) {
      st.cfg.log->warn("g{}: the save of step {} is abandoned: {}", a.generation, *step, why);
    }
    for (auto& w : st.waiting) w.promise.deliver(false);  // their ranks are gone
    st.waiting.clear();
  }
  st.generation = a.generation;
  state.catalog().set_meta(k_meta_generation, std::to_string(a.generation));
  if (!st.committer) {
    st.committer.emplace(state.catalog(),
                         checkpoint::committer_options{
                             .root_dir = state.checkpoint_root(),
                             .retention = {spec.checkpoint.keep_last, spec.checkpoint.keep_every},
                             .skip_when_busy = spec.checkpoint.when_busy == "skip"},
                         st.cfg.log);
    st.committer->recover();
  }
  if (a.start_step > 0) {
    st.cfg.log->info("g{} step {}: resumed from step {} (run {})", a.generation,
                     a.start_step, a.start_step, state.run_id());
    state.catalog().append_event("resumed", config::json_object()
                                                .add("step", a.start_step)
                                                .add("world_size", int64_t{a.world})
                                                .str());
  }
  return state.run_id();
}

msg::catalog_counts finish(catalog_state& st, const msg::run_finished& f) {
  msg::catalog_counts counts;
  if (st.committer) {
    st.committer->wait_idle();
    const auto s = st.committer->stats();
    counts = {s.committed, s.failed, s.skipped, s.blocked_ms};
  }
  if (f.finished) st.cfg.state->catalog().set_meta(k_meta_finished_steps, std::to_string(f.steps));
  return counts;
}

}  // namespace

caf::behavior catalog_actor(caf::event_based_actor* self, catalog_actor_config config) {
  auto st = std::make_shared<catalog_state>();
  st->cfg = std::move(config);
  // (the handler holds the logger, not the state: the state holds response promises, which
  // hold this actor, and a handler lives as long as the actor object)
  self->set_exception_handler([log = st->cfg.log](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {  // the catalog is in doubt: the run stops
      log->error("catalog: {}", x.what());
      return caf::make_error(caf::sec::runtime_error, std::string(x.what()));
    }
  });
  return {
      [self, st](const msg::save_begin& r) -> caf::result<bool> {
        if (!st->committer || r.generation != st->generation) {
          return caf::make_error(caf::sec::invalid_argument,
                                 fmt::format("catalog: a save of step {} from generation {}, "
                                             "this is generation {}", r.step, r.generation,
                                             st->generation));
        }
        if (const auto go = st->committer->try_begin(r.step, r.world, r.generation)) return *go;
        auto promise = self->make_response_promise<bool>();  // answered by answer_waiting()
        st->waiting.push_back({r, promise});
        return promise;
      },
      [st](const msg::end_generation& e) {  // fenced: its saves that wait will not be made
        std::erase_if(st->waiting, [&](waiting_begin& w) {
          if (w.request.generation > e.generation) return false;
          w.promise.deliver(false);
          return true;
        });
      },
      [st](const msg::shard_done& d) {
        if (!expected_report(*st, d.generation, d.step, "durable shard")) return;
        st->committer->shard_durable(d.step, from_wire(d.shard));
        if (!st->committer->step_in_flight()) answer_waiting(*st);
      },
      [st](const msg::shard_fail& f) {
        if (!expected_report(*st, f.generation, f.step, "failed shard")) return;
        st->committer->shard_failed(f.step, f.rank, f.error);
        if (!st->committer->step_in_flight()) answer_waiting(*st);
      },
      [st](const msg::restore_pick& p) -> caf::result<msg::restore_choice> {
        return guarded<msg::restore_choice>([&] { return pick(*st, p); });
      },
      [st](const msg::newest_step&) -> int64_t {
        const auto latest = st->cfg.state->catalog().latest();
        return latest ? latest->step : -1;
      },
      [st](const msg::restore_failed& f) {
        st->failures.push_back({f.step, f.corrupt, f.error});
        checkpoint::record_restore_failure(st->cfg.state->catalog(), st->failures.back(),
                                           *st->cfg.log);
      },
      [st](const msg::start_accepted& a) -> caf::result<std::string> {
        return guarded<std::string>([&] { return accept(*st, a); });
      },
      [st](const msg::run_event& e) {
        st->cfg.state->catalog().append_event(e.kind, e.json);
      },
      [st](const msg::run_finished& f) -> caf::result<msg::catalog_counts> {
        return guarded<msg::catalog_counts>([&] { return finish(*st, f); });
      },
  };
}


}  // namespace lz::actors
