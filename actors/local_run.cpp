// local_run.cpp: the single-process training run (see local_run.hpp).
#include "actors/local_run.hpp"

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <csignal>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <unistd.h>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/model_descriptor.hpp"
#include "actors/run_files.hpp"
#include "actors/rank_session.hpp"
#include "actors/run_state.hpp"
#include "actors/stop_signal.hpp"
#include "checkpoint/committer.hpp"
#include "checkpoint/fault_hook.hpp"
#include "checkpoint/restore.hpp"
#include "checkpoint/file_io.hpp"
#include "checkpoint/llmc_format.hpp"
#include "config/json_writer.hpp"
#include "engine/dataset.hpp"
#include "engine/digest.hpp"
#include "engine/gpt2.hpp"
#include "engine/gloo_communicator.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/memory_estimate.hpp"
#include "engine/sample.hpp"
#include "engine/train_step.hpp"

namespace lz::actors {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

constexpr const char* k_log_pattern = "%Y-%m-%d %H:%M:%S.%e %n %^%l%$ %v";

// The run's logger: the terminal, and until the start is accepted a memory buffer that
// attach_log_file() later writes to run.log, so a refused start leaves run.log as it was.
struct run_logger {
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> early;
};

run_logger make_run_logger(const std::string& level) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto early = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1024);
  auto logger = std::make_shared<spdlog::logger>("run", spdlog::sinks_init_list{console, early});
  logger->set_level(spdlog::level::from_str(level));
  logger->set_pattern(k_log_pattern);
  logger->flush_on(spdlog::level::info);  // a killed run keeps its last lines
  return {logger, early};
}

// Appends to run.log (never truncates it): a line marking this start, then what was logged
// before the start was accepted.
void attach_log_file(run_logger& l, const std::string& path) {
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
  } catch (const spdlog::spdlog_ex& e) {
    LZ_THROW(io_error, "cannot write the run log '{}': {}; pass a writable --state-dir", path,
             e.what());
  }
  file->set_pattern(k_log_pattern);
  file->set_level(l.log->level());
  const std::string text = fmt::format("==== lazarus run starts (pid {}) ====", ::getpid());
  spdlog::details::log_msg marker(spdlog::source_loc{}, l.log->name(), spdlog::level::info, text);
  file->log(marker);
  for (const auto& m : l.early->last_raw()) file->log(m);
  file->flush();
  auto& sinks = l.log->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), l.early), sinks.end());
  sinks.push_back(file);
  l.early.reset();
}

// Opens metrics.jsonl for appending after keeping only the lines of steps <= start_step
// (a resumed run replays the steps after its checkpoint); loss_at_start gets the loss of
// step start_step when that line exists. Lines that do not read as a step after the one
// before (torn, garbled, repeated) are dropped with a warning, and the file as it was is
// kept beside it first.
std::ofstream open_metrics(const std::string& path, int64_t start_step, double& loss_at_start,
                           spdlog::logger& log) {
  std::vector<std::string> kept;
  std::vector<int64_t> bad_lines;
  int64_t last_kept = 0;
  if (start_step > 0) {
    std::ifstream in(path);
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      int64_t step = -1;
      double loss = NAN;  // stays NaN for a non-finite loss, written as null
      const bool parsed = std::sscanf(line.c_str(), "{\"step\":%" SCNd64, &step) == 1 &&
                          line.back() == '}';
      if (parsed) std::sscanf(line.c_str(), "{\"step\":%*d,\"loss\":%lf", &loss);
      if (parsed && step > start_step) continue;  // replayed: written again below
      if (!parsed || step <= last_kept) {
        bad_lines.push_back(number);
        continue;
      }
      last_kept = step;
      if (step == start_step) loss_at_start = loss;
      kept.push_back(line);
    }
  }
  if (!bad_lines.empty()) {
    const std::string copy = fmt::format("{}.{}.bak", path, ::time(nullptr));
    std::error_code ec;
    std::filesystem::copy_file(path, copy, ec);
    if (ec) LZ_THROW(io_error, "cannot keep a copy of '{}' as '{}': {}", path, copy, ec.message());
    std::string numbers;
    for (int64_t n : bad_lines) numbers += (numbers.empty() ? "" : ", ") + std::to_string(n);
    log.warn("metrics: line(s) {} of '{}' do not read as a step after the one before and were "
             "dropped; the file as it was is kept as '{}'", numbers, path, copy);
  }
  std::ofstream out(path, std::ios::trunc);
  if (!out) LZ_THROW(io_error, "cannot write '{}': check that the state dir is writable", path);
  for (const auto& line : kept) out << line << '\n';
  out.flush();
  return out;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

void write_text_file(const std::string& path, const std::string& text) {
  checkpoint::write_file_durably(path, {{text.data(), text.size()}});
}

// What the ranks' loops share. Rank 0 alone writes metrics, evaluates, logs progress and
// reports where the run stopped; every rank saves its part of each checkpoint.
struct run_context {
  const config::run_spec& spec;
  const engine::token_dataset& val;
  spdlog::logger& log;
  std::ofstream& metrics;
  bool tty = false;
  int64_t start_step = 0;
  // written by rank 0
  double train_seconds = 0.0;
  int64_t train_tokens = 0;
  double final_loss = NAN;
  double val_loss = NAN;
  int64_t stopped_after = -1;  // the step the run stopped after, when a signal stopped it
  int stop_signal = 0;
};

// One rank's training loop, on its own thread.
void rank_loop(rank_session& session, run_context& ctx) {
  session.backend().use_in_this_thread();
  const config::run_spec& spec = ctx.spec;
  const bool lead = session.rank() == 0;
  const int64_t B = spec.data.micro_batch, T = spec.data.seq_len;
  const int64_t log_every = std::max<int64_t>(1, spec.run.steps / 20);
  for (int64_t step = ctx.start_step; step < spec.run.steps; step++) {
    const auto t0 = clock_type::now();
    const engine::step_result r = session.step(step);
    if (r.discarded) {  // every rank sees the same loss and norm, so every rank stops here
      LZ_THROW(lz::error, "{}: the step is discarded and the run stops; lower optimizer.lr or "
               "raise optimizer.warmup_steps, then run the same command to resume", r.why);
    }
    const bool last = step + 1 == spec.run.steps;
    if (lead) {
      const double step_s = seconds_since(t0);
      ctx.train_seconds += step_s;
      ctx.train_tokens += r.tokens;
      const bool evaluate = last || (spec.run.val_every_steps > 0 &&
                                     (step + 1) % spec.run.val_every_steps == 0);
      config::json_object line;
      line.add("step", step + 1).add("loss", r.loss).add("lr", r.lr)
          .add("grad_norm", r.grad_norm).add("step_ms", step_s * 1e3)
          .add("tokens_per_s", static_cast<double>(r.tokens) / step_s)
          .add("generation", int64_t{0}).add("world_size", int64_t{session.world_size()});
      if (evaluate) {
        // a stop signal ends the evaluation at a batch boundary; the step stops below
        const auto stop = [step] {
          checkpoint::fault_point("eval.batch", step + 1);
          return stop_signal() != 0;
        };
        ctx.val_loss = engine::evaluate(session.model(), ctx.val, spec.run.val_batches, B, T,
                                        stop).value_or(NAN);
        if (!std::isnan(ctx.val_loss)) line.add("val_loss", ctx.val_loss);
      }
      ctx.metrics << line.str() << '\n';
      ctx.metrics.flush();
      ctx.final_loss = r.loss;
      const double tok_s = static_cast<double>(ctx.train_tokens) / ctx.train_seconds;
      const double eta = ctx.train_seconds / static_cast<double>(step + 1 - ctx.start_step) *
                         static_cast<double>(spec.run.steps - step - 1);
      if (ctx.tty) {
        std::fprintf(stderr, "\rstep %lld/%lld | loss %.4f | %.1fk tok/s | ETA %s   ",
                     static_cast<long long>(step + 1), static_cast<long long>(spec.run.steps),
                     r.loss, tok_s / 1e3, format_duration(eta).c_str());
        if (last) std::fprintf(stderr, "\n");
      }
      if (evaluate && !std::isnan(ctx.val_loss)) {
        if (ctx.tty) std::fprintf(stderr, "\n");
        ctx.log.info("g0 step {}: loss {:.4f} val_loss {:.4f} lr {:.3e} grad_norm {:.3f}",
                     step + 1, r.loss, ctx.val_loss, r.lr, r.grad_norm);
      } else if (!ctx.tty && (step + 1) % log_every == 0) {
        ctx.log.info("g0 step {}/{}: loss {:.4f} {:.0f} tok/s ETA {}", step + 1,
                     spec.run.steps, r.loss, tok_s, format_duration(eta));
      }
    }
    checkpoint::fault_point("train.after_step", step + 1, session.rank());
    bool saved = false;
    if (spec.checkpoint.every_steps > 0 && (step + 1) % spec.checkpoint.every_steps == 0) {
      session.save_after(step + 1, last);
      saved = true;
    }
    if (last) break;
    if (session.any_rank_stops(stop_signal() != 0)) {
      session.finish_open_snapshot();  // no update will fill it: a copy does
      if (spec.checkpoint.every_steps > 0 && !saved) session.save_after(step + 1, true);
      session.wait_checkpoint_idle();
      if (lead) {
        ctx.stopped_after = step + 1;
        ctx.stop_signal = stop_signal() != 0 ? stop_signal() : SIGTERM;
      }
      return;
    }
  }
  session.wait_checkpoint_idle();
}

// The communicators of a world of `ranks` threads of this process.
std::vector<std::unique_ptr<engine::communicator>> connect_world(
    const config::run_spec& spec, std::unique_ptr<engine::inproc_world>& inproc,
    engine::memory_store& store) {
  const int world = static_cast<int>(spec.parallel.ranks);
  const auto timeout = std::chrono::minutes(10);  // a stuck rank ends the run, never hangs it
  std::vector<std::unique_ptr<engine::communicator>> comms(static_cast<size_t>(world));
  if (spec.parallel.communicator == "inproc" || world == 1) {
    inproc = std::make_unique<engine::inproc_world>(world, 0, timeout);
    for (int r = 0; r < world; r++) comms[static_cast<size_t>(r)] = inproc->connect(r);
    return comms;
  }
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; r++) {
    threads.emplace_back([&, r] {
      try {
        comms[static_cast<size_t>(r)] =
            engine::connect_gloo(store, r, world, 0, {.host = "127.0.0.1", .timeout = timeout});
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return comms;
}

}  // namespace

local_run_result run_local(const config::run_spec& spec, const local_run_options& options) {
  run_logger logger = make_run_logger(spec.logging.level);
  auto& log = logger.log;
  std::printf("%s\n", config::format_spec_table(spec).c_str());
  std::fflush(stdout);
  const int world = static_cast<int>(spec.parallel.ranks);

  // 1. Checks that need no state dir: memory (every rank of this process holds a model),
  // data, cores.
  if (const uint64_t memory = engine::physical_memory_bytes(); memory > 0) {
    engine::require_memory_fits(spec, memory);
  }
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
  if (const unsigned cores = std::thread::hardware_concurrency();
      cores > 0 && spec.parallel.ranks * spec.parallel.threads_per_rank > cores) {
    log->warn("parallel.ranks x parallel.threads_per_rank = {} x {} threads on {} cores: ranks "
              "will wait for each other's descheduled threads; lower threads_per_rank",
              spec.parallel.ranks, spec.parallel.threads_per_rank, cores);
  }

  // 2. The world: one rank session per rank, ranks as threads of this process.
  std::optional<checkpoint::committer> committer;  // outlives the sessions' checkpointers
  std::unique_ptr<engine::inproc_world> inproc;
  engine::memory_store store;
  const auto comms = connect_world(spec, inproc, store);
  std::vector<std::unique_ptr<rank_session>> sessions;
  for (int r = 0; r < world; r++) {
    sessions.push_back(
        std::make_unique<rank_session>(spec, *comms[static_cast<size_t>(r)], train, log));
  }
  rank_session& lead = *sessions.front();
  const int64_t P = lead.model().num_params();
  if (world > 1) {
    log->info("parallel: {} ranks in this process over the {} communicator, {} reduction; "
              "rank 0 trains slots [{}, {}) and owns parameters [{}, {})",
              world, comms.front()->name(), spec.parallel.reduction, lead.slots().begin,
              lead.slots().end, lead.owned().begin, lead.owned().end);
  }

  // 3. The state dir: every check that can refuse this start, then the restore; nothing is
  // written before both pass.
  run_state state = run_state::inspect(spec, options.state_dir, engine::data_fingerprint(train),
                                       options.start, *log);
  int64_t start_step = 0;
  if (state.resuming()) {
    std::vector<checkpoint::restore_target> targets;
    for (auto& s : sessions) {
      for (auto& t : s->restore_targets()) targets.push_back(t);
    }
    const auto outcome = checkpoint::restore_latest(
        state.catalog(), state.checkpoint_root(), targets,
        {model_descriptor(lead.model().config()), P}, *log);
    state.require_restored(outcome);
    if (outcome.restored) {
      start_step = outcome.restored->record.step;
      if (outcome.restored->meta.data_seed != spec.run.seed) {
        LZ_THROW(spec_error, "the checkpoints in '{}' were trained with run.seed {}, this spec "
                 "says {}: resuming would change the data order; use the same run.seed or "
                 "another --state-dir", state.checkpoint_root(), outcome.restored->meta.data_seed,
                 spec.run.seed);
      }
    }
  }
  if (start_step == 0) {
    for (auto& s : sessions) s->init_weights();
    if (!spec.model.init_from.empty()) log->info("model: weights from '{}'", spec.model.init_from);
  }

  // 4. Accepted: from here on the run writes.
  state.begin(spec);
  const std::string dir = state.state_dir();
  const std::string& run_id = state.run_id();
  attach_log_file(logger, log_path(dir));
  write_text_file(spec_path(dir), config::format_spec_toml(spec));
  log->info("model: {} parameters (L {} C {} NH {} Vp {}), backend {} with {} thread(s) per "
            "rank", P, spec.model.layers, spec.model.channels, spec.model.heads,
            lead.model().config().padded_vocab_size, lead.backend().name(),
            lead.backend().threads());
  committer.emplace(state.catalog(),
                    checkpoint::committer_options{
                        .root_dir = state.checkpoint_root(),
                        .retention = {spec.checkpoint.keep_last, spec.checkpoint.keep_every},
                        .skip_when_busy = spec.checkpoint.when_busy == "skip"},
                    log);
  committer->recover();
  for (auto& s : sessions) {
    s->attach_checkpointer(*committer, {.async = spec.checkpoint.async},
                           run_id, 0);
  }
  if (start_step > 0) {
    log->info("g0 step {}: resumed from checkpoint step {} (run {})", start_step, start_step,
              run_id);
    state.catalog().append_event("resumed", config::json_object()
                                                .add("step", start_step)
                                                .add("world_size", int64_t{world})
                                                .str());
  }
  // the weights this process starts training from (after init, init_from or a restore)
  const std::string initial_sha256 =
      engine::sha256_hex(lead.model().params(), static_cast<size_t>(P) * sizeof(float));

  // 5. Training: every rank on its own thread; the first failure aborts the world so that
  // no rank waits for a dead one.
  double resumed_loss = NAN;
  std::ofstream metrics = open_metrics(metrics_path(dir), start_step, resumed_loss, *log);
  run_context ctx{.spec = spec, .val = val, .log = *log, .metrics = metrics,
                  .tty = options.progress && ::isatty(STDERR_FILENO) == 1,
                  .start_step = start_step};
  ctx.final_loss = resumed_loss;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  std::vector<std::thread> threads;
  for (auto& s : sessions) {
    threads.emplace_back([&, session = s.get()] {
      try {
        rank_loop(*session, ctx);
      } catch (...) {
        std::lock_guard lock(failure_mutex);
        const bool secondary = [] {  // a rank that failed because another one did
          try {
            throw;
          } catch (const engine::comm_error&) {
            return true;
          } catch (...) {
            return false;
          }
        }();
        if (!failure || !secondary) failure = std::current_exception();
        for (auto& c : comms) c->abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  committer->wait_idle();
  local_run_result result;
  if (ctx.stopped_after >= 0) {
    if (ctx.tty) std::fprintf(stderr, "\n");
    log->warn("g0 step {}: stopped by signal {}{}; run the same command to resume",
              ctx.stopped_after, ctx.stop_signal,
              spec.checkpoint.every_steps > 0 ? " after saving this step"
                                              : " (checkpoint.every_steps = 0: nothing saved)");
    result.steps = ctx.stopped_after;
    result.stopped_by_signal = ctx.stop_signal;
    return result;
  }
  engine::gpt2& model = lead.model();
  if (std::isnan(ctx.val_loss) && stop_signal() == 0) {
    lead.backend().use_in_this_thread();
    ctx.val_loss = engine::evaluate(model, val, spec.run.val_batches, spec.data.micro_batch, T,
                                    [] { return stop_signal() != 0; }).value_or(NAN);
  }
  const checkpoint::committer_stats cs = committer->stats();
  double blocked_ms = cs.blocked_ms;
  for (auto& s : sessions) blocked_ms += s->checkpoint_stats().blocked_ms;

  // 6. Results (every rank holds the same weights; rank 0's are written)
  result.steps = spec.run.steps;
  result.final_loss = ctx.final_loss;
  result.val_loss = ctx.val_loss;
  result.tokens_per_s =
      ctx.train_seconds > 0 ? static_cast<double>(ctx.train_tokens) / ctx.train_seconds : 0.0;
  result.weights_sha256 =
      engine::sha256_hex(model.params(), static_cast<size_t>(P) * sizeof(float));
  checkpoint::write_llmc_model(final_model_path(dir), llmc_header_of(model.config()),
                               model.params(), P);
  config::json_object summary;
  summary.add("name", spec.run.name).add("run_id", run_id).add("steps", result.steps)
      .add("final_loss", result.final_loss).add("val_loss", result.val_loss)
      .add("tokens_per_s", result.tokens_per_s).add("train_seconds", ctx.train_seconds)
      .add("num_params", P).add("world_size", int64_t{world})
      .add("reduction", spec.parallel.reduction)
      .add("threads", lead.backend().threads())
      .add("resumed_from_step", start_step).add("checkpoints_committed", cs.committed)
      .add("checkpoints_failed", cs.failed).add("checkpoint_blocked_ms", blocked_ms)
      .add("initial_weights_sha256", initial_sha256).add("weights_sha256", result.weights_sha256);
  write_text_file(summary_path(dir), summary.str() + "\n");
  log->info("done: {} steps, loss {:.4f}, val_loss {:.4f}, {:.0f} tok/s, weights sha256 {}",
            result.steps, result.final_loss, result.val_loss, result.tokens_per_s,
            result.weights_sha256);

  if (spec.run.sample_tokens > 0 && V == 256) {
    const std::string text = engine::sample_text(model, "And ", spec.run.sample_tokens,
                                                 spec.run.sample_temperature, spec.run.seed);
    write_text_file(sample_path(dir), text);
    std::printf("--- sample (%lld tokens, temperature %.2f) ---\n%s\n---\n",
                static_cast<long long>(spec.run.sample_tokens), spec.run.sample_temperature,
                text.c_str());
  }
  std::printf("%s\n", summary.str().c_str());
  return result;
}

std::string sample_from_state_dir(const std::string& state_dir, const std::string& prompt,
                                  int64_t tokens, double temperature, uint64_t seed,
                                  int threads) {
  const checkpoint::llmc_model m = checkpoint::read_llmc_model(final_model_path(state_dir));
  if (m.header.vocab_size != 256) {
    LZ_THROW(spec_error, "the model in '{}' has vocabulary {}; text sampling needs the "
             "byte-level tokenizer (256)", state_dir, m.header.vocab_size);
  }
  auto backend = kernels::make_cpu_backend(threads);
  engine::gpt2 model(gpt2_config_of(m.header), *backend);
  std::copy(m.params.begin(), m.params.end(), model.params());
  return engine::sample_text(model, prompt.empty() ? std::string("\n") : prompt, tokens,
                             temperature, seed);
}

}  // namespace lz::actors
