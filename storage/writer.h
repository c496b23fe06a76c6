#pragma once
// One writer per process: a thread that owns the database connection and runs the jobs that
// training threads post to it, in order. Posting blocks while `capacity` jobs wait, so a slow
// disk slows training down instead of filling memory; training threads never wait for SQLite
// otherwise. No LibTorch here.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>

#include "storage/store.h"

namespace htga::storage {

class Writer {
 public:
  /// Takes the store over: from now on only the writer thread touches it.
  explicit Writer(std::unique_ptr<Store> store, size_t capacity = 256);
  /// Runs every job still queued, then stops the thread.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  /// Queues a job. If an earlier posted job failed, throws its error (once) instead.
  void post(std::function<void(Store&)> job);

  /// Runs a job after every job queued before it and returns its result (or throws its error).
  template <class F>
  auto call(F&& fn) -> std::invoke_result_t<F, Store&> {
    using R = std::invoke_result_t<F, Store&>;
    auto task = std::make_shared<std::packaged_task<R(Store&)>>(std::forward<F>(fn));
    auto result = task->get_future();
    post([task](Store& s) { (*task)(s); });
    return result.get();
  }

  /// Waits until every queued job has run; throws the error of a failed one.
  void sync();

  /// Jobs waiting now (for tests and progress).
  size_t queued();

 private:
  void loop();
  void rethrow_locked(std::unique_lock<std::mutex>& lock);

  std::unique_ptr<Store> store_;
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_, idle_;
  std::deque<std::function<void(Store&)>> jobs_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace htga::storage
