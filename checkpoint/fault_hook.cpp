#include "checkpoint/fault_hook.hpp"

#include <atomic>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace lz::checkpoint {

namespace {

struct armed_fault {
  std::string point;
  int64_t step = -1;  // -1: any step
  int32_t rank = -1;  // -1: any rank
  fault_action action = fault_action::none;
};

armed_fault parse_fault() {
  armed_fault f;
  const char* env = std::getenv("LAZARUS_FAULT");
  if (env == nullptr || *env == '\0') return f;
  std::string spec = env;
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
    } else if (action != "kill") {
      std::fprintf(stderr,
                   "lazarus: LAZARUS_FAULT action '%s' is not kill, term, enospc or nan; ignored\n",
                   action.c_str());
      return {};
    }
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

const armed_fault& armed() {
  static const armed_fault f = parse_fault();  // read once; immutable afterwards
  return f;
}

}  // namespace

fault_action fault_at(std::string_view point, int64_t step, int32_t rank) {
  const armed_fault& f = armed();
  if (f.action == fault_action::none || f.point != point) return fault_action::none;
  if (f.step >= 0 && f.step != step) return fault_action::none;
  if (f.rank >= 0 && rank >= 0 && f.rank != rank) return fault_action::none;
  return f.action;
}

void fault_point(std::string_view point, int64_t step, int32_t rank) {
  const fault_action action = fault_at(point, step, rank);
  if (action != fault_action::kill && action != fault_action::term) return;
  static std::atomic<bool> fired{false};  // once per process: a point may be passed again
  if (fired.exchange(true)) return;       // before the signal arrives
  const bool kill = action == fault_action::kill;
  std::fprintf(stderr, "lazarus: fault injected at %.*s (step %lld): %s\n",
               static_cast<int>(point.size()), point.data(), static_cast<long long>(step),
               kill ? "SIGKILL" : "SIGTERM");
  std::fflush(stderr);
  // raise() delivers SIGTERM to this thread before it returns, so the stop is seen at this
  // very point even with other threads running; SIGKILL ends the whole process anyway.
  if (kill) {
    ::kill(::getpid(), SIGKILL);
  } else {
    std::raise(SIGTERM);
  }
}

bool fault_enospc(std::string_view point, int64_t step, int32_t rank) {
  return fault_at(point, step, rank) == fault_action::enospc;
}

bool fault_nan(std::string_view point, int64_t step, int32_t rank) {
  if (fault_at(point, step, rank) != fault_action::nan) return false;
  static std::atomic<bool> fired{false};  // once per process: the retried step is clean
  if (fired.exchange(true)) return false;
  std::fprintf(stderr, "lazarus: fault injected at %.*s (step %lld): NaN loss\n",
               static_cast<int>(point.size()), point.data(), static_cast<long long>(step));
  return true;
}

}  // namespace lz::checkpoint
