#pragma once
// One epoch of batches from a pack, made by worker threads into a ring of reusable buffers.
//
//   PackFile pack("data/imagenet-pack/train.pack");
//   BatchStreamOptions o;  o.batch_size = 256; o.crop = 224; o.train = true;
//   o.seed = 1; o.epoch = e; o.loader_threads = 8;
//   BatchStream stream(pack, o);
//   while (std::optional<Batch> b = stream.next()) {
//     // b->pixels: uint8 [b->size, crop, crop, 3] RGB; b->labels: int64 [b->size]
//     ... copy into a pinned tensor / hand to the device ...
//     stream.release(*b);  // the buffer goes back to the workers
//   }
//   if (experiments::stop_requested()) ...  // next() also ends early on a stop
//
// The epoch's order is `indices` (all images when empty), shuffled by a permutation drawn from
// (seed, epoch) when `shuffle`. Image p of the epoch is transformed (augment.h) with
// ImageRng(seed, epoch, p): the batches are bit-identical for any number of threads.
// Memory: `ring` buffers of batch_size * crop * crop * 3 bytes, a decode buffer per thread, and
// the bytes of the images in flight (PackFile::read, not the mapping): independent of the pack's
// size, but for the index's pages that label() touches (24 bytes an image).
// Workers wait when the ring is full (back-pressure); at most `ring` batches can be held by the
// consumer at once (next() with all of them held is a logic_error rather than a deadlock).

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "experiments/pack/reader.h"

namespace htga::pack {

struct BatchStreamOptions {
  int64_t batch_size = 256;
  int crop = 224;     // output side, pixels
  bool train = true;  // random-resized crop + flip; false: resize + centre crop
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool shuffle = true;           // permute `indices` from (seed, epoch); false: their order
  std::vector<int64_t> indices;  // images of the pack in this stream; empty = all
  bool drop_last = false;        // leave out a last, smaller batch
  int loader_threads = 4;
  int ring = 0;                // batch buffers; 0 = loader_threads + 2
  int64_t first_position = 0;  // ImageRng position of the stream's first image: a stream of the rest
                               // of an epoch (shuffle false) draws as the whole epoch's would
};

/// A batch inside the stream's ring: valid until release(); release it so the ring goes on.
struct Batch {
  int64_t index = 0;                // batch number in the epoch, 0, 1, ...
  const uint8_t* pixels = nullptr;  // [size, crop, crop, 3] uint8 RGB, HWC per image
  const int64_t* labels = nullptr;  // [size]
  int64_t size = 0;                 // images in this batch (the last one may be smaller)
  int slot = 0;                     // its ring buffer
};

class BatchStream {
 public:
  /// Starts the workers. `pack` must outlive the stream. Throws std::invalid_argument for a
  /// batch size or crop < 1, no threads, or an index out of the pack.
  BatchStream(const PackFile& pack, BatchStreamOptions options);
  /// Stops the workers and waits for them.
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  /// The next batch in order; waits for it. std::nullopt after the last batch, after stop() or
  /// when experiments::stop_requested(). Rethrows a worker's error (a corrupt image in the pack).
  std::optional<Batch> next();
  /// Gives a batch's buffer back (in any order).
  void release(const Batch& batch);
  /// Stops the workers; next() returns std::nullopt from now on.
  void stop();

  int64_t batches() const { return batches_; }
  /// The epoch's order: order()[p] is the pack index of the epoch's p-th image.
  const std::vector<int64_t>& order() const { return order_; }

 private:
  struct Slot {
    int64_t batch = 0;    // the batch it holds or is being filled with
    int64_t pending = 0;  // images of that batch not yet written
    std::vector<uint8_t> pixels;
    std::vector<int64_t> labels;
  };
  int64_t batch_images(int64_t b) const;
  void work();
  void work_loop();
  void make_image(int64_t position, JpegCodec& codec, RgbImage& decoded, RgbImage& scratch);

  const PackFile& pack_;
  BatchStreamOptions o_;
  std::vector<int64_t> order_;
  int64_t batches_ = 0, images_ = 0;  // images_: positions of the epoch that are produced
  size_t image_bytes_ = 0;
  std::vector<Slot> slots_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t next_position_ = 0, next_batch_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

/// The epoch's order of `BatchStreamOptions`: indices (or 0..n-1), Fisher-Yates shuffled with
/// ImageRng(seed, epoch, kShuffleStream) when shuffle is set.
std::vector<int64_t> epoch_order(int64_t pack_size, const BatchStreamOptions& options);
constexpr uint64_t kShuffleStream = ~0ull;

}  // namespace htga::pack
