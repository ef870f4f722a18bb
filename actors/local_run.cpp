// local_run.cpp: the single-process training run (see local_run.hpp).
#include "actors/local_run.hpp"

#include <chrono>
#include <cinttypes>
#include <random>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <unistd.h>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/model_descriptor.hpp"
#include "actors/run_files.hpp"
#include "actors/run_state.hpp"
#include "actors/stop_signal.hpp"
#include "checkpoint/catalog.hpp"
#include "checkpoint/checkpointer.hpp"
#include "checkpoint/fault_hook.hpp"
#include "checkpoint/restore.hpp"
#include "checkpoint/file_io.hpp"
#include "checkpoint/llmc_format.hpp"
#include "config/json_writer.hpp"
#include "engine/dataset.hpp"
#include "engine/digest.hpp"
#include "engine/gpt2.hpp"
#include "engine/inproc_communicator.hpp"
#include "engine/memory_estimate.hpp"
#include "engine/optimizer.hpp"
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

// Loads an llm.c model into `model`, whose shape the spec fixed; a mismatch names the keys.
void load_init_from(engine::gpt2& model, const std::string& path) {
  const checkpoint::llmc_model m = checkpoint::read_llmc_model(path);
  const engine::gpt2_config want = model.config();
  const engine::gpt2_config got = gpt2_config_of(m.header);
  if (!(got == want)) {
    LZ_THROW(spec_error,
             "model.init_from = '{}' has shape maxT {} V {} Vp {} L {} NH {} C {}, but the spec "
             "says maxT {} V {} Vp {} L {} NH {} C {}: set model.max_seq_len, vocab_size, "
             "padded_vocab_size, layers, heads and channels to the file's values",
             path, got.max_seq_len, got.vocab_size, got.padded_vocab_size, got.layers, got.heads,
             got.channels, want.max_seq_len, want.vocab_size, want.padded_vocab_size,
             want.layers, want.heads, want.channels);
  }
  std::copy(m.params.begin(), m.params.end(), model.params());
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

}  // namespace

local_run_result run_local(const config::run_spec& spec, const local_run_options& options) {
  run_logger logger = make_run_logger(spec.logging.level);
  auto& log = logger.log;
  std::printf("%s\n", config::format_spec_table(spec).c_str());
  std::fflush(stdout);

  // 1. Checks that need no state dir: memory, data, the model.
  engine::require_memory_fits(spec, engine::physical_memory_bytes());
  const int64_t V = spec.model.vocab_size;
  const int64_t T = spec.data.seq_len, B = spec.data.micro_batch, slots = spec.data.slots;
  const auto train = engine::token_dataset::from_glob(spec.data.train_shards, V);
  const auto val = engine::token_dataset::from_glob(spec.data.val_shards, V);
  if (val.num_windows(T) < 1) {
    LZ_THROW(data_error, "the validation shards (data.val_shards = \"{}\") hold {} tokens, "
             "fewer than one sequence of data.seq_len + 1 = {}: prepare a larger validation "
             "split (lazarus data prepare --val-fraction) or lower data.seq_len",
             spec.data.val_shards, val.num_tokens(), T + 1);
  }
  engine::train_batcher batcher(train, spec.run.seed, T, slots, B);
  log->info("data: {} train tokens in {} shard(s), {} validation tokens; {} windows of {} "
            "tokens per epoch, {} tokens per step ({:.2f} epochs in {} steps)",
            train.num_tokens(), train.paths().size(), val.num_tokens(),
            batcher.plan().windows_per_epoch(), T, slots * B * T,
            batcher.plan().epoch_of(spec.run.steps), spec.run.steps);
  if (spec.parallel.ranks > 1) {
    log->info("parallel.ranks = {}: this runtime trains all {} slots in one process; the "
              "global batch and the result are those of {} ranks",
              spec.parallel.ranks, slots, spec.parallel.ranks);
  }
  auto backend = kernels::make_cpu_backend(static_cast<int>(spec.parallel.threads_per_rank));
  engine::gpt2 model(engine::gpt2_config::from_spec(spec), *backend);
  engine::adamw_optimizer optimizer(
      model.layout(), 0, model.num_params(),
      {spec.optimizer.beta1, spec.optimizer.beta2, spec.optimizer.eps,
       spec.optimizer.weight_decay});
  const int64_t P = model.num_params();
  const std::string descriptor = model_descriptor(model.config());

  // 2. The state dir: every check that can refuse this start, then the restore; nothing is
  // written before both pass.
  run_state state = run_state::inspect(spec, options.state_dir, engine::data_fingerprint(train),
                                       options.start, *log);
  int64_t start_step = 0;
  if (state.resuming()) {
    const auto outcome = checkpoint::restore_latest(
        state.catalog(), state.checkpoint_root(), {0, P},
        {{"params", model.params()}, {"adam_m", optimizer.m()}, {"adam_v", optimizer.v()}},
        {descriptor, P}, *log);
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
    if (spec.model.init_from.empty()) {
      model.init_random(spec.run.seed);
    } else {
      load_init_from(model, spec.model.init_from);
      log->info("model: weights from '{}'", spec.model.init_from);
    }
  }

  // 3. Accepted: from here on the run writes.
  state.begin(spec);
  const std::string dir = state.state_dir();
  const std::string& run_id = state.run_id();
  attach_log_file(logger, log_path(dir));
  write_text_file(spec_path(dir), config::format_spec_toml(spec));
  log->info("model: {} parameters (L {} C {} NH {} Vp {}), backend {} with {} thread(s)",
            model.num_params(), spec.model.layers, spec.model.channels, spec.model.heads,
            model.config().padded_vocab_size, backend->name(), backend->threads());
  const engine::lr_schedule schedule{spec.optimizer.lr, spec.optimizer.min_lr_ratio,
                                     spec.optimizer.warmup_steps, spec.run.steps};
  engine::inproc_world world(1, 0, std::chrono::minutes(10));
  const auto comm = world.connect(0);
  engine::train_step stepper(model, optimizer, batcher, schedule,
                             {.seq_len = T, .micro_batch = B, .slots = slots,
                              .grad_clip = spec.optimizer.grad_clip},
                             *comm);
  const std::string ckpt_root = state.checkpoint_root();
  checkpoint::checkpointer ckpt(
      state.catalog(),
      {ckpt_root, {spec.checkpoint.keep_last, spec.checkpoint.keep_every}, spec.checkpoint.async,
       spec.checkpoint.when_busy == "skip"},
      log);
  ckpt.recover();
  if (start_step > 0) {
    log->info("g0 step {}: resumed from checkpoint step {} (run {})", start_step, start_step,
              run_id);
    state.catalog().append_event("resumed", config::json_object().add("step", start_step).str());
  }
  // the weights this process starts training from (after init, init_from or a restore)
  const std::string initial_sha256 =
      engine::sha256_hex(model.params(), static_cast<size_t>(P) * sizeof(float));
  stepper.set_before_update([&ckpt] { ckpt.wait_snapshot(); });
  if (spec.checkpoint.every_steps > 0) ckpt.reserve(3, P);
  bool snapshot_open = false;  // the next update fills a checkpoint's snapshot
  // Saves the state after `steps_done` steps: through the next optimizer update when there
  // is one (it copies what it reads), else by a copy.
  auto save_checkpoint = [&](int64_t steps_done, bool last) {
    checkpoint::shard_meta meta;
    meta.run_id = run_id;
    meta.step = steps_done;
    meta.world_size = 1;
    meta.rank = 0;
    meta.flat_total = P;
    meta.range = {0, P};
    meta.data_seed = spec.run.seed;
    meta.model = descriptor;
    if (last) {
      ckpt.save(meta, {{"params", model.params(), P}, {"adam_m", optimizer.m(), P},
                       {"adam_v", optimizer.v(), P}});
      return;
    }
    const auto buffers = ckpt.begin_snapshot(meta, {"params", "adam_m", "adam_v"});
    if (buffers) {
      stepper.snapshot_next_update({(*buffers)[0], (*buffers)[1], (*buffers)[2]});
      snapshot_open = true;
    }
  };

  // Training loop
  double resumed_loss = NAN;
  std::ofstream metrics = open_metrics(metrics_path(dir), start_step, resumed_loss, *log);
  const bool tty = options.progress && ::isatty(STDERR_FILENO) == 1;
  const int64_t log_every = std::max<int64_t>(1, spec.run.steps / 20);
  local_run_result result;
  double train_seconds = 0.0;
  int64_t train_tokens = 0;
  double val_loss = NAN;
  result.final_loss = resumed_loss;
  for (int64_t step = start_step; step < spec.run.steps; step++) {
    const auto t0 = clock_type::now();
    const engine::step_result r = stepper.run(step);
    if (r.discarded) {
      if (snapshot_open) ckpt.abandon_snapshot();
      LZ_THROW(lz::error, "{}: the step is discarded and the run stops; lower optimizer.lr or "
               "raise optimizer.warmup_steps, then run the same command to resume", r.why);
    }
    if (snapshot_open) {
      ckpt.end_snapshot();
      snapshot_open = false;
    }
    const double step_s = seconds_since(t0);
    train_seconds += step_s;
    train_tokens += r.tokens;
    const bool last = step + 1 == spec.run.steps;
    const bool evaluate = last || (spec.run.val_every_steps > 0 &&
                                   (step + 1) % spec.run.val_every_steps == 0);
    config::json_object line;
    line.add("step", step + 1).add("loss", r.loss).add("lr", r.lr).add("grad_norm", r.grad_norm)
        .add("step_ms", step_s * 1e3).add("tokens_per_s", static_cast<double>(r.tokens) / step_s)
        .add("generation", int64_t{0});
    if (evaluate) {
      // a stop signal ends the evaluation at a batch boundary; the step stops below
      const auto stop = [step] {
        checkpoint::fault_point("eval.batch", step + 1);
        return stop_signal() != 0;
      };
      val_loss = engine::evaluate(model, val, spec.run.val_batches, B, T, stop).value_or(NAN);
      if (!std::isnan(val_loss)) line.add("val_loss", val_loss);
    }
    metrics << line.str() << '\n';
    metrics.flush();
    result.final_loss = r.loss;

    const double tok_s = static_cast<double>(train_tokens) / train_seconds;
    const double eta = train_seconds / static_cast<double>(step + 1 - start_step) *
                       static_cast<double>(spec.run.steps - step - 1);
    if (tty) {
      std::fprintf(stderr, "\rstep %lld/%lld | loss %.4f | %.1fk tok/s | ETA %s   ",
                   static_cast<long long>(step + 1), static_cast<long long>(spec.run.steps),
                   r.loss, tok_s / 1e3, format_duration(eta).c_str());
      if (last) std::fprintf(stderr, "\n");
    }
    if (evaluate && !std::isnan(val_loss)) {
      if (tty) std::fprintf(stderr, "\n");
      log->info("g0 step {}: loss {:.4f} val_loss {:.4f} lr {:.3e} grad_norm {:.3f}", step + 1,
                r.loss, val_loss, r.lr, r.grad_norm);
    } else if (!tty && (step + 1) % log_every == 0) {
      log->info("g0 step {}/{}: loss {:.4f} {:.0f} tok/s ETA {}", step + 1, spec.run.steps,
                r.loss, tok_s, format_duration(eta));
    }
    checkpoint::fault_point("train.after_step", step + 1);
    bool saved = false;
    if (spec.checkpoint.every_steps > 0 && (step + 1) % spec.checkpoint.every_steps == 0) {
      save_checkpoint(step + 1, last);
      saved = !snapshot_open;  // a fused snapshot would wait for an update that won't come
    }
    if (const int sig = stop_signal(); sig != 0 && !last) {
      if (snapshot_open) {
        ckpt.abandon_snapshot();
        snapshot_open = false;
      }
      if (spec.checkpoint.every_steps > 0 && !saved) save_checkpoint(step + 1, true);
      ckpt.wait_idle();
      if (tty) std::fprintf(stderr, "\n");
      log->warn("g0 step {}: stopped by signal {}{}; run the same command to resume", step + 1,
                sig, spec.checkpoint.every_steps > 0 ? " after saving this step" :
                " (checkpoint.every_steps = 0: nothing saved)");
      result.steps = step + 1;
      result.stopped_by_signal = sig;
      return result;
    }
  }
  ckpt.wait_idle();
  if (std::isnan(val_loss) && stop_signal() == 0) {
    val_loss = engine::evaluate(model, val, spec.run.val_batches, B, T,
                                [] { return stop_signal() != 0; }).value_or(NAN);
  }
  const checkpoint::checkpointer_stats cs = ckpt.stats();

  // Results
  result.steps = spec.run.steps;
  result.val_loss = val_loss;
  result.tokens_per_s = train_seconds > 0 ? static_cast<double>(train_tokens) / train_seconds : 0.0;
  result.weights_sha256 = engine::sha256_hex(
      model.params(), static_cast<size_t>(model.num_params()) * sizeof(float));
  checkpoint::write_llmc_model(final_model_path(dir), llmc_header_of(model.config()), model.params(),
                               model.num_params());
  config::json_object summary;
  summary.add("name", spec.run.name).add("run_id", run_id).add("steps", result.steps)
      .add("final_loss", result.final_loss).add("val_loss", result.val_loss)
      .add("tokens_per_s", result.tokens_per_s).add("train_seconds", train_seconds)
      .add("num_params", model.num_params()).add("threads", backend->threads())
      .add("resumed_from_step", start_step).add("checkpoints_committed", cs.committed)
      .add("checkpoints_failed", cs.failed).add("checkpoint_blocked_ms", cs.blocked_ms)
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
