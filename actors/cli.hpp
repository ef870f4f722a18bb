// cli.hpp: the `lazarus` command line (CLI11 lives in cli.cpp only: it is slow to compile).
#pragma once

namespace lz::actors {

// Parses argv and runs the subcommand; returns the process exit code. Errors the user can
// fix are printed to stderr with their fix and give a non-zero code.
int run_cli(int argc, char** argv);

}  // namespace lz::actors
