#include "experiments/scheduler.h"

#include <ATen/Parallel.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <thread>

namespace htga::experiments {

std::vector<size_t> shard_cells(size_t cells, int index, int count) {
  std::vector<size_t> mine;
  for (size_t i = 0; i < cells; ++i)
    if (static_cast<int>(i % static_cast<size_t>(count)) == index) mine.push_back(i);
  return mine;
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

storage::Claim claim_cell(storage::Writer& writer, const storage::RunRecord& record, double stale_after_s,
                          bool resume) {
  const std::string host = record.host;
  const int64_t pid = record.pid;
  // A record of this host whose process is gone (killed) is taken over without waiting for its
  // heartbeat to go stale; one of this process is ours to take again (a restart of the cell).
  auto alive = [host, pid](const storage::RunRecord& r) {
    return r.host != host || r.pid <= 0 ||
           (r.pid != pid && (kill(static_cast<pid_t>(r.pid), 0) == 0 || errno != ESRCH));
  };
  return writer.call([&](storage::Store& s) { return s.claim_run(record, stale_after_s, resume, alive); });
}

void ActiveCells::add(size_t index, CellWriter* writer) {
  std::lock_guard<std::mutex> lock(mu_);
  cells_[index] = writer;
}

void ActiveCells::remove(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  cells_.erase(index);
}

size_t ActiveCells::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return cells_.size();
}

void ActiveCells::heartbeat_all() {
  std::lock_guard<std::mutex> lock(mu_);  // a cell's writer is removed, and synced, only under the lock
  for (auto& [index, writer] : cells_) writer->heartbeat();
}

namespace {

/// A thread that beats hearts and ticks until it is destroyed.
class Ticker {
 public:
  Ticker(const PoolOptions& o, ActiveCells& active, const std::function<void()>& on_tick)
      : o_(o), active_(active), on_tick_(on_tick), thread_([this] { loop(); }) {}
  ~Ticker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void loop() {
    using Clock = std::chrono::steady_clock;
    auto last_beat = Clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    while (running_) {
      cv_.wait_for(lock, std::chrono::duration<double>(o_.tick_seconds));
      if (!running_) break;
      if (on_tick_) on_tick_();
      if (std::chrono::duration<double>(Clock::now() - last_beat).count() >= o_.heartbeat_seconds) {
        last_beat = Clock::now();
        try {
          active_.heartbeat_all();
        } catch (const std::exception&) {
          // a failed write is reported by the cell that writes next
        }
      }
    }
  }

  const PoolOptions& o_;
  ActiveCells& active_;
  const std::function<void()>& on_tick_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = true;
  std::thread thread_;
};

}  // namespace

void run_pool(const std::vector<size_t>& todo, const PoolOptions& options, const std::function<void(size_t)>& work,
              const std::function<bool()>& stop, ActiveCells& active, const std::function<void()>& on_tick) {
  const int jobs = std::max(1, std::min<int>(options.jobs, static_cast<int>(std::max<size_t>(todo.size(), 1))));
  // OpenMP's thread count is a setting of each thread: every worker sets its own.
  const int threads_per_job = std::max(1, options.threads_per_job);
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::exception_ptr first_error;
  auto worker = [&] {
    at::set_num_threads(threads_per_job);
    for (;;) {
      if (stop && stop()) return;
      const size_t k = next++;
      if (k >= todo.size()) return;
      try {
        work(todo[k]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!first_error) first_error = std::current_exception();
      }
    }
  };
  {
    Ticker ticker(options, active, on_tick);
    if (jobs == 1) {
      worker();
    } else {
      std::vector<std::thread> threads;
      for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
      for (auto& t : threads) t.join();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace htga::experiments
