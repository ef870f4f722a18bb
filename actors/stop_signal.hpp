// stop_signal.hpp: SIGINT and SIGTERM ask a run to stop at the next step boundary, after
// saving a checkpoint of that step; a second signal ends the process at once.
#pragma once

namespace lz::actors {

// Installs the handlers (once, from main()).
void install_stop_handlers();
// The signal that asked for a stop, or 0.
int stop_signal();

}  // namespace lz::actors
