#pragma once
// Cooperative stop: signal handlers (SIGINT, SIGTERM) ask for it, and the training loops stop
// after their current step, flush and record their cells as interrupted.

namespace htga::experiments {

/// Asks every cell in training to stop after its current step; no further cell starts.
void request_stop();
bool stop_requested();
/// The signal that asked for the stop (SIGINT, SIGTERM, SIGHUP, SIGUSR2), 0 when none did.
int stop_signal();
void reset_stop();
/// SIGINT, SIGTERM, SIGHUP and SIGUSR2 (Slurm's warning before a time limit): the first asks for a stop; another one a
/// second or more later exits at once with status 130 (the database stays consistent: SQLite commits are atomic). One
/// within the second is the same request (`timeout` signals the process and then its group).
void install_signal_handlers();

}  // namespace htga::experiments
