#include "storage/writer.h"

namespace htga::storage {

Writer::Writer(std::unique_ptr<Store> store, size_t capacity)
    : store_(std::move(store)), capacity_(capacity == 0 ? 1 : capacity), thread_([this] { loop(); }) {}

Writer::~Writer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  not_empty_.notify_all();
  thread_.join();
}

void Writer::rethrow_locked(std::unique_lock<std::mutex>& lock) {
  if (!error_) return;
  auto e = error_;
  error_ = nullptr;
  lock.unlock();
  std::rethrow_exception(e);
}

void Writer::post(std::function<void(Store&)> job) {
  std::unique_lock<std::mutex> lock(mu_);
  rethrow_locked(lock);
  not_full_.wait(lock, [this] { return jobs_.size() < capacity_; });
  jobs_.push_back(std::move(job));
  lock.unlock();
  not_empty_.notify_one();
}

void Writer::sync() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return jobs_.empty() && !busy_; });
  rethrow_locked(lock);
}

size_t Writer::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void Writer::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    not_empty_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stop_ and drained
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_ = true;
    lock.unlock();
    not_full_.notify_one();
    try {
      job(*store_);
    } catch (...) {
      std::lock_guard<std::mutex> g(mu_);
      if (!error_) error_ = std::current_exception();
    }
    lock.lock();
    busy_ = false;
    if (jobs_.empty()) idle_.notify_all();
  }
}

}  // namespace htga::storage
