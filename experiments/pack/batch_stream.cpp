#include "experiments/pack/batch_stream.h"

#include <chrono>
#include <stdexcept>
#include <string>

#include "experiments/pack/augment.h"
#include "experiments/stop.h"

namespace htga::pack {

std::vector<int64_t> epoch_order(int64_t pack_size, const BatchStreamOptions& o) {
  std::vector<int64_t> order = o.indices;
  if (order.empty())
    for (int64_t i = 0; i < pack_size; ++i) order.push_back(i);
  if (o.shuffle) {
    ImageRng rng(o.seed, static_cast<uint64_t>(o.epoch), kShuffleStream);
    for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  }
  return order;
}

BatchStream::BatchStream(const PackFile& pack, BatchStreamOptions options) : pack_(pack), o_(std::move(options)) {
  if (o_.batch_size < 1) throw std::invalid_argument("BatchStream: batch_size must be at least 1");
  if (o_.crop < 1) throw std::invalid_argument("BatchStream: crop must be at least 1");
  if (o_.loader_threads < 1) throw std::invalid_argument("BatchStream: loader_threads must be at least 1");
  for (int64_t i : o_.indices)
    if (i < 0 || i >= pack.size())
      throw std::invalid_argument("BatchStream: index " + std::to_string(i) + " is not an image of " + pack.path());
  order_ = epoch_order(pack.size(), o_);
  const int64_t n = static_cast<int64_t>(order_.size());
  batches_ = o_.drop_last ? n / o_.batch_size : (n + o_.batch_size - 1) / o_.batch_size;
  images_ = std::min(n, batches_ * o_.batch_size);
  image_bytes_ = static_cast<size_t>(o_.crop) * o_.crop * 3;
  slots_.resize(o_.ring > 0 ? o_.ring : o_.loader_threads + 2);
  for (size_t s = 0; s < slots_.size(); ++s) {
    slots_[s].batch = static_cast<int64_t>(s);
    slots_[s].pending = batch_images(slots_[s].batch);
    slots_[s].pixels.resize(o_.batch_size * image_bytes_);
    slots_[s].labels.resize(o_.batch_size);
  }
  for (int t = 0; t < o_.loader_threads; ++t) threads_.emplace_back([this] { work(); });
}

BatchStream::~BatchStream() { stop(); }

void BatchStream::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
}

int64_t BatchStream::batch_images(int64_t b) const {
  if (b >= batches_) return 0;
  return std::min(o_.batch_size, images_ - b * o_.batch_size);
}

void BatchStream::make_image(int64_t p, JpegCodec& codec, RgbImage& decoded, RgbImage& scratch) {
  const int64_t b = p / o_.batch_size, k = p % o_.batch_size;
  Slot& slot = slots_[b % static_cast<int64_t>(slots_.size())];
  const int64_t image = order_[p];
  pack_.decode(image, codec, decoded);
  uint8_t* out = slot.pixels.data() + k * image_bytes_;
  if (o_.train) {
    ImageRng rng(o_.seed, static_cast<uint64_t>(o_.epoch), static_cast<uint64_t>(o_.first_position + p));
    random_resized_crop(decoded, o_.crop, rng, out);
  } else {
    resize_center_crop(decoded, o_.crop, scratch, out);
  }
  slot.labels[k] = pack_.label(image);
}

void BatchStream::work() {
  try {
    work_loop();
  } catch (...) {  // a codec that cannot be created
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
    cv_.notify_all();
  }
}

void BatchStream::work_loop() {
  JpegCodec codec;
  RgbImage decoded, scratch;
  const int64_t ring = static_cast<int64_t>(slots_.size());
  for (;;) {
    int64_t p = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (stop_ || next_position_ >= images_ || experiments::stop_requested()) return;
      p = next_position_++;
      const int64_t b = p / o_.batch_size;
      // The slot is this batch's once the consumer released the batch `ring` before it.
      cv_.wait(lock, [&] { return stop_ || slots_[b % ring].batch == b; });
      if (stop_) return;
    }
    try {
      make_image(p, codec, decoded, scratch);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (--slots_[(p / o_.batch_size) % ring].pending == 0) cv_.notify_all();
  }
}

std::optional<Batch> BatchStream::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_batch_ >= batches_) return std::nullopt;
  const int s = static_cast<int>(next_batch_ % static_cast<int64_t>(slots_.size()));
  if (slots_[s].batch != next_batch_)
    throw std::logic_error("BatchStream::next: all " + std::to_string(slots_.size()) +
                           " batch buffers are held: release one first");
  for (;;) {
    if (error_) std::rethrow_exception(error_);
    if (stop_ || experiments::stop_requested()) return std::nullopt;
    if (slots_[s].pending == 0) break;
    // Woken by the workers; the timeout only notices a stop asked by a signal.
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  Batch batch{next_batch_, slots_[s].pixels.data(), slots_[s].labels.data(), batch_images(next_batch_), s};
  ++next_batch_;
  return batch;
}

void BatchStream::release(const Batch& batch) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Slot& slot = slots_.at(batch.slot);
    if (slot.batch != batch.index || batch.index >= next_batch_)
      throw std::logic_error("BatchStream::release: batch " + std::to_string(batch.index) + " is not held");
    slot.batch += static_cast<int64_t>(slots_.size());
    slot.pending = batch_images(slot.batch);
  }
  cv_.notify_all();
}

}  // namespace htga::pack
