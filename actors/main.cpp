// main.cpp: the `lazarus` executable.
#include <cstdlib>

#include <unistd.h>

#include "actors/cli.hpp"

int main(int argc, char** argv) {
  // OpenMP threads that wait passively leave the core to whoever else needs it (another rank,
  // the checkpoint writer, another process): with another process busy on one of two cores,
  // the p99 step falls from about 8x the quiet median to 2.5x (bench/contention_bench). libgomp
  // reads the policy once, when it loads, so the process starts again with it set; a policy
  // the user set is kept.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
  }
  return lz::actors::run_cli(argc, argv);
}
