// caf_runtime.hpp: the actor system of a Lazarus process (coordinator, node agent, worker).
//
// Every process registers the same message types (messages.hpp) and runs CAF io's middleman
// with heartbeats, so that a peer that stops answering (SIGSTOP, a cut network) is reported
// as down after `connection_timeout` instead of never (../shared/DEPENDENCIES.md: with CAF's
// defaults no down message ever arrives for a hung peer).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/messages.hpp"

namespace lz::actors {

struct caf_options {
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds connection_timeout{5000};
  int worker_threads = 2;  // the scheduler's threads: control messages only
};

// The configuration must outlive the system: both live here.
//
// The shutdown at destruction is bounded: CAF's actor system waits for every detached actor
// object to be destroyed, and one still referenced somewhere would make the process hang
// at its very end with its work done. After k_shutdown_limit the process says so on stderr
// and ends with the code given to exit_code_on_hang() (1 unless told).
class caf_runtime {
public:
  static constexpr auto k_shutdown_limit = std::chrono::seconds(20);

  explicit caf_runtime(const caf_options& options);
  ~caf_runtime();
  caf::actor_system& system() { return *system_; }
  void exit_code_on_hang(int code) { exit_code_on_hang_ = code; }

private:
  caf::actor_system_config config_;
  std::unique_ptr<caf::actor_system> system_;
  int exit_code_on_hang_ = 1;
};

// "HOST:PORT" -> (host, port); a spec_error naming the text otherwise.
struct host_port {
  std::string host;
  uint16_t port = 0;
};
host_port parse_host_port(const std::string& text, const std::string& what);

// The actor published at host:port, asked until `timeout` passes (the coordinator may still
// be starting); an io_error naming the address and the fix otherwise.
caf::actor connect_remote(caf::actor_system& sys, const host_port& where,
                          std::chrono::milliseconds timeout, const std::string& what);

// The message of an error reply made from an lz::error (its text), else CAF's rendering.
std::string error_text(caf::actor_system& sys, const caf::error& e);

}  // namespace lz::actors
