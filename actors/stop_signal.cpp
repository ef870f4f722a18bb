#include "actors/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace lz::actors {

namespace {

// The one piece of process-wide state a signal handler can write.
std::atomic<int> requested{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  if (requested.exchange(sig) != 0) {
    // Second signal: the user insists. Default action, immediately.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() { return requested.load(); }

}  // namespace lz::actors
