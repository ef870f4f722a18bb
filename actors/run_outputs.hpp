// run_outputs.hpp: what a run writes into its state dir besides the catalog: the log
// (run.log, appended to), metrics.jsonl (trimmed to the restore step on a resume), text
// files written durably, and the sample of text from the final model.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>

namespace lz::actors {

// A process's logger: the terminal, and until the start is accepted a memory buffer that
// attach_log_file() later writes to the log file, so a refused start leaves the file as it
// was.
struct run_logger {
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> early;
};
run_logger make_run_logger(const std::string& name, const std::string& level);

// Appends to `path` (never truncates it): a line marking this start, then what was logged
// before the start was accepted.
void attach_log_file(run_logger& l, const std::string& path, const std::string& what);

// Opens metrics.jsonl for appending after keeping only the lines of steps <= start_step
// (a resumed run replays the steps after its checkpoint); loss_at_start gets the loss of
// step start_step when that line exists. Lines that do not read as a step after the one
// before (torn, garbled, repeated) are dropped with a warning, and the file as it was is
// kept beside it first.
std::ofstream open_metrics(const std::string& path, int64_t start_step, double& loss_at_start,
                           spdlog::logger& log);

std::string format_duration(double seconds);
void write_text_file(const std::string& path, const std::string& text);  // durably

// Samples `tokens` bytes of text from the final model of a state dir.
std::string sample_from_state_dir(const std::string& state_dir, const std::string& prompt,
                                  int64_t tokens, double temperature, uint64_t seed,
                                  int threads);

}  // namespace lz::actors
