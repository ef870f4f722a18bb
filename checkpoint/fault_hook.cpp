#include "checkpoint/fault_hook.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

namespace lz::checkpoint {

namespace {

struct armed_fault {
  std::string point;
  int64_t step = -1;        // -1: any step
  int32_t rank = -1;        // -1: any rank
  int64_t generation = 0;
  fault_action action = fault_action::none;
};

constexpr size_t k_max_faults = 16;

// One entry of LAZARUS_FAULT; action none when it cannot be read (said on stderr).
armed_fault parse_one(std::string spec) {
  armed_fault f;
  f.action = fault_action::kill;
  if (const auto colon = spec.find(':'); colon != std::string::npos) {
    const std::string action = spec.substr(colon + 1);
    spec.resize(colon);
    if (action == "enospc") {
      f.action = fault_action::enospc;
    } else if (action == "nan") {
      f.action = fault_action::nan;
    } else if (action == "term") {
      f.action = fault_action::term;
    } else if (action == "stop") {
      f.action = fault_action::stop;
    } else if (action != "kill") {
      std::fprintf(stderr, "lazarus: LAZARUS_FAULT action '%s' is not kill, term, stop, enospc "
                   "or nan; ignored\n", action.c_str());
      return {};
    }
  }
  if (const auto pct = spec.find('%'); pct != std::string::npos) {
    f.generation = std::strtoll(spec.c_str() + pct + 1, nullptr, 10);
    spec.resize(pct);
  }
  if (const auto hash = spec.find('#'); hash != std::string::npos) {
    f.rank = static_cast<int32_t>(std::strtol(spec.c_str() + hash + 1, nullptr, 10));
    spec.resize(hash);
  }
  if (const auto at = spec.find('@'); at != std::string::npos) {
    f.step = std::strtoll(spec.c_str() + at + 1, nullptr, 10);
    spec.resize(at);
  }
  f.point = spec;
  return f;
}

std::vector<armed_fault> parse_faults() {
  std::vector<armed_fault> out;
  const char* env = std::getenv("LAZARUS_FAULT");
  if (env == nullptr || *env == '\0') return out;
  const std::string text = env;
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    if (end > begin) {
      armed_fault f = parse_one(text.substr(begin, end - begin));
      if (f.action != fault_action::none && out.size() < k_max_faults) out.push_back(std::move(f));
    }
    begin = end + 1;
  }
  return out;
}

const std::vector<armed_fault>& armed() {
  static const std::vector<armed_fault> faults = parse_faults();  // read once; immutable
  return faults;
}

std::atomic<int64_t> g_generation{0};
std::atomic<bool> g_fired[k_max_faults];  // once per process and fault: a point may be
                                          // passed again before its signal arrives

// The index of the first armed fault matching (point, step, rank) in this generation.
int match_index(std::string_view point, int64_t step, int32_t rank) {
  const auto& faults = armed();
  for (size_t i = 0; i < faults.size(); i++) {
    const armed_fault& f = faults[i];
    if (f.point != point || f.generation != g_generation.load()) continue;
    if (f.step >= 0 && f.step != step) continue;
    if (f.rank >= 0 && rank >= 0 && f.rank != rank) continue;
    return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

void set_fault_generation(int64_t generation) { g_generation = generation; }

fault_action fault_at(std::string_view point, int64_t step, int32_t rank) {
  const int i = match_index(point, step, rank);
  return i < 0 ? fault_action::none : armed()[static_cast<size_t>(i)].action;
}

void fault_point(std::string_view point, int64_t step, int32_t rank) {
  const int i = match_index(point, step, rank);
  if (i < 0) return;
  const auto at = static_cast<size_t>(i);
  const fault_action action = armed()[at].action;
  if (action != fault_action::kill && action != fault_action::term && action != fault_action::stop) return;
  if (g_fired[at].exchange(true)) return;
  const char* what = action == fault_action::kill ? "SIGKILL" : action == fault_action::term ? "SIGTERM" : "SIGSTOP";
  std::fprintf(stderr, "lazarus: fault injected at %.*s (step %lld): %s\n",
               static_cast<int>(point.size()), point.data(), static_cast<long long>(step), what);
  std::fflush(stderr);
  // raise() delivers SIGTERM to this thread before it returns, so the stop is seen at this
  // very point even with other threads running; SIGKILL and SIGSTOP act on the whole process.
  if (action == fault_action::term) {
    std::raise(SIGTERM);
  } else {
    ::kill(::getpid(), action == fault_action::kill ? SIGKILL : SIGSTOP);
  }
}

bool fault_enospc(std::string_view point, int64_t step, int32_t rank) {
  return fault_at(point, step, rank) == fault_action::enospc;
}

bool fault_nan(std::string_view point, int64_t step, int32_t rank) {
  const int i = match_index(point, step, rank);
  if (i < 0 || armed()[static_cast<size_t>(i)].action != fault_action::nan) return false;
  if (g_fired[static_cast<size_t>(i)].exchange(true)) return false;  // the retried step is clean
  std::fprintf(stderr, "lazarus: fault injected at %.*s (step %lld): NaN loss\n",
               static_cast<int>(point.size()), point.data(), static_cast<long long>(step));
  return true;
}

}  // namespace lz::checkpoint
