#include "experiments/stop.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ctime>

namespace htga::experiments {

namespace {

std::atomic<int> g_stop{0};
std::atomic<int64_t> g_first_ns{0};  // when the first signal came (CLOCK_MONOTONIC)
std::atomic<int> g_signal{0};        // which one it was

/// A second signal this soon after the first is the same request: `timeout` (and a shell's
/// Ctrl-C) signal the process and its group at once, and quitting then would leave cells
/// `running` instead of recorded as interrupted.
constexpr int64_t kSameRequestNs = 1'000'000'000;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

extern "C" void on_signal(int sig) {
  const int64_t now = now_ns();
  if (g_stop.fetch_add(1) >= 1) {
    if (now - g_first_ns.load() >= kSameRequestNs) _exit(130);  // asked again: leave at once
    return;
  }
  g_first_ns = now;
  g_signal = sig;
  const char msg[] = "\nhtga: stopping after the current step (again to quit at once)\n";
  [[maybe_unused]] auto n = write(2, msg, sizeof msg - 1);
}

}  // namespace

void request_stop() { g_stop.fetch_add(1); }
bool stop_requested() { return g_stop.load(std::memory_order_relaxed) > 0; }
void reset_stop() {
  g_stop.store(0);
  g_signal.store(0);
}
int stop_signal() { return g_signal.load(); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);   // a closed terminal or ssh session: stop as cleanly
  sigaction(SIGUSR2, &sa, nullptr);  // Slurm's --signal before a time limit (htga slurm submit)
}

}  // namespace htga::experiments
