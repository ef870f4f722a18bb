// run_outputs.cpp: see run_outputs.hpp.
#include "actors/run_outputs.hpp"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/model_descriptor.hpp"
#include "actors/run_files.hpp"
#include "checkpoint/file_io.hpp"
#include "checkpoint/llmc_format.hpp"
#include "config/error.hpp"
#include "engine/gpt2.hpp"
#include "engine/sample.hpp"
#include "kernels/backend.hpp"

namespace lz::actors {

namespace {

constexpr const char* k_log_pattern = "%Y-%m-%d %H:%M:%S.%e %n %^%l%$ %v";

}  // namespace

run_logger make_run_logger(const std::string& name, const std::string& level) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto early = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1024);
  auto logger = std::make_shared<spdlog::logger>(name, spdlog::sinks_init_list{console, early});
  logger->set_level(spdlog::level::from_str(level));
  logger->set_pattern(k_log_pattern);
  logger->flush_on(spdlog::level::info);  // a killed run keeps its last lines
  return {logger, early};
}

void attach_log_file(run_logger& l, const std::string& path, const std::string& what) {
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
  } catch (const spdlog::spdlog_ex& e) {
    LZ_THROW(io_error, "cannot write the run log '{}': {}; pass a writable --state-dir", path,
             e.what());
  }
  file->set_pattern(k_log_pattern);
  file->set_level(l.log->level());
  const std::string text = fmt::format("==== {} starts (pid {}) ====", what, ::getpid());
  spdlog::details::log_msg marker(spdlog::source_loc{}, l.log->name(), spdlog::level::info, text);
  file->log(marker);
  for (const auto& m : l.early->last_raw()) file->log(m);
  file->flush();
  auto& sinks = l.log->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), l.early), sinks.end());
  sinks.push_back(file);
  l.early.reset();
}

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
