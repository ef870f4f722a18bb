// caf_runtime.cpp: see caf_runtime.hpp.
#include "actors/caf_runtime.hpp"

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "config/error.hpp"

namespace lz::actors {

caf_runtime::caf_runtime(const caf_options& options) {
  config_.add_message_types<caf::id_block::lz>();
  config_.load<caf::io::middleman>();
  config_.set("middleman.heartbeat-interval", caf::timespan{options.heartbeat_interval});
  config_.set("middleman.connection-timeout", caf::timespan{options.connection_timeout});
  config_.set("scheduler.max-threads", static_cast<size_t>(options.worker_threads));
  // Idle scheduler threads sleep on a condition variable instead of polling: a rank's
  // process must leave its cores to training.
  config_.set("scheduler.policy", caf::atom("sharing"));
  config_.set("logger.verbosity", caf::atom("quiet"));
  system_ = std::make_unique<caf::actor_system>(config_);
}

caf_runtime::~caf_runtime() {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&, code = exit_code_on_hang_] {
    std::unique_lock lock(mutex);
    if (done_cv.wait_for(lock, k_shutdown_limit, [&] { return done; })) return;
    std::fprintf(stderr, "lazarus: the actor system did not shut down within %lld s (an actor "
                 "is still referenced); ending the process with code %d, its work done\n",
                 static_cast<long long>(k_shutdown_limit.count()), code);
    std::fflush(stderr);
    std::_Exit(code);
  });
  system_.reset();
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  done_cv.notify_all();
  watchdog.join();
}

host_port parse_host_port(const std::string& text, const std::string& what) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    LZ_THROW(spec_error, "{} '{}' is not HOST:PORT (for example 127.0.0.1:7000)", what, text);
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:7000
  }
  const std::string port_text = text.substr(colon + 1);
  long port = -1;
  try {
    size_t used = 0;
    port = std::stol(port_text, &used);
    if (used != port_text.size()) port = -1;
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    LZ_THROW(spec_error, "{} '{}': the port '{}' is not a number from 0 to 65535", what, text,
             port_text);
  }
  return {host, static_cast<uint16_t>(port)};
}

caf::actor connect_remote(caf::actor_system& sys, const host_port& where,
                          std::chrono::milliseconds timeout, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  for (auto pause = std::chrono::milliseconds(20);; pause = std::min(pause * 2, std::chrono::milliseconds(500))) {
    auto found = sys.middleman().remote_actor(where.host, where.port);
    if (found) return *found;
    last = sys.render(found.error());
    if (std::chrono::steady_clock::now() + pause > deadline) break;
    std::this_thread::sleep_for(pause);  // a connection retry, not synchronisation
  }
  LZ_THROW(io_error, "cannot reach the {} at {}:{} within {} ms ({}): check the address, that "
           "it is running and that the port is open", what, where.host, where.port,
           timeout.count(), last);
}

std::string error_text(caf::actor_system& sys, const caf::error& e) {
  const caf::message& ctx = e.context();
  if (ctx.match_elements<std::string>()) return ctx.get_as<std::string>(0);
  return sys.render(e);
}

}  // namespace lz::actors
