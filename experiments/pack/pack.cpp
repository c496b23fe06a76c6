#include "experiments/pack/pack.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <ostream>
#include <thread>

#include "experiments/error.h"
#include "experiments/pack/image.h"
#include "experiments/stop.h"

namespace htga::pack {

namespace fs = std::filesystem;

namespace {

/// One input image, ready for the writer: the bytes to store, or why it is skipped.
struct Encoded {
  std::string bytes;
  int height = 0, width = 0;
  SkipReason status = SkipReason::kNone;
  std::string detail;
};

Encoded encode_one(JpegCodec& codec, const std::string& path, const PackSettings& s) {
  Encoded e;
  std::ifstream in(path, std::ios::binary);
  std::string data;
  if (in) data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) {
    e.status = SkipReason::kUnreadable;
    e.detail = std::strerror(errno);
    return e;
  }
  if (data.empty()) {
    e.status = SkipReason::kEmpty;
    return e;
  }
  try {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data());
    const RgbImage image = resize_shorter(decode_image(codec, p, data.size(), /*min_short=*/s.size), s.size);
    e.height = image.height;
    e.width = image.width;
    e.bytes = s.raw ? std::string(image.pixels.begin(), image.pixels.end()) : codec.encode(image, s.quality);
  } catch (const DecodeError& err) {
    e.status = SkipReason::kCorrupt;
    e.detail = err.what();
  }
  return e;
}

/// Worker threads that encode images [start, n) ahead of the writer, at most `window` ahead.
class Pipeline {
 public:
  Pipeline(const std::vector<InputImage>& images, int64_t start, const PackSettings& s)
      : images_(images), settings_(s), next_(start), taken_(start), window_(4 * s.threads) {
    for (int t = 0; t < s.threads; ++t) threads_.emplace_back([this] { work(); });
  }
  ~Pipeline() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  /// Image i's result (i = the previous call's + 1): waits for it, rethrows a worker's failure.
  Encoded take(int64_t i) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return error_ || done_.count(i); });
    if (error_) std::rethrow_exception(error_);
    Encoded e = std::move(done_[i]);
    done_.erase(i);
    taken_ = i + 1;
    cv_.notify_all();
    return e;
  }

 private:
  void work() {
    try {
      work_loop();
    } catch (...) {  // a codec that cannot be created
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      cv_.notify_all();
    }
  }

  void work_loop() {
    JpegCodec codec;
    const int64_t n = static_cast<int64_t>(images_.size());
    for (;;) {
      int64_t i = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || next_ >= n || next_ < taken_ + window_; });
        if (stop_ || next_ >= n) return;
        i = next_++;
      }
      try {
        Encoded e = encode_one(codec, images_[i].path, settings_);
        std::lock_guard<std::mutex> lock(mutex_);
        done_[i] = std::move(e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      cv_.notify_all();
    }
  }

  const std::vector<InputImage>& images_;
  const PackSettings& settings_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, Encoded> done_;
  int64_t next_, taken_, window_;
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

/// Progress of one split on the error stream: a bar redrawn in place, or a line every_s seconds.
class Meter {
 public:
  Meter(std::ostream& err, const PackSettings& s, const std::string& name, int64_t total, int64_t start)
      : err_(err), bar_(s.progress_bar), every_s_(s.progress_every_s), name_(name), total_(total), start_(start) {}
  void update(int64_t done) {
    const auto now = std::chrono::steady_clock::now();
    if (bar_ ? now - last_ < std::chrono::milliseconds(200) && done < total_
             : every_s_ <= 0 || now - last_ < std::chrono::duration<double>(every_s_))
      return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - begin_).count();
    const double rate = secs > 0 ? (done - start_) / secs : 0;
    if (bar_) {
      const int width = 30, filled = total_ ? static_cast<int>(width * done / total_) : width;
      err_ << "\r" << name_ << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << done
           << "/" << total_ << " images, " << static_cast<int64_t>(rate) << "/s" << std::flush;
    } else {
      err_ << "pack: " << name_ << ": " << done << "/" << total_ << " images, " << static_cast<int64_t>(rate) << "/s"
           << std::endl;
    }
  }
  void finish() {
    if (bar_) err_ << "\n" << std::flush;
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count(); }

 private:
  std::ostream& err_;
  bool bar_;
  double every_s_;
  std::string name_;
  int64_t total_, start_;
  std::chrono::steady_clock::time_point begin_ = std::chrono::steady_clock::now(), last_ = begin_;
};

void check_settings(const PackSettings& s) {
  if (s.size < 8 || s.size > 4096)
    throw InputError("htga pack: --size " + std::to_string(s.size) + " is not in 8..4096");
  if (!s.raw && (s.quality < 1 || s.quality > 100))
    throw InputError("htga pack: --quality " + std::to_string(s.quality) + " is not in 1..100");
  if (s.threads < 1) throw InputError("htga pack: --threads must be at least 1");
}

/// The output folder exists and is writable, or its nearest existing parent is.
void check_output_folder(const std::string& out) {
  if (out.empty()) throw InputError("htga pack: --out: an empty path");
  fs::path p = fs::absolute(out);
  while (!fs::exists(p) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  if (!fs::is_directory(p)) throw InputError(out + ": cannot be a folder (" + p.string() + " is not a folder)");
  if (::access(p.c_str(), W_OK | X_OK) != 0) throw InputError(out + ": not writable (" + p.string() + ")");
}

Header header_for(const std::vector<std::string>& classes, const PackSettings& s, uint64_t fingerprint) {
  Header h;
  h.mode = s.raw ? Mode::kRaw : Mode::kJpeg;
  h.size = static_cast<uint32_t>(s.size);
  h.quality = s.raw ? 0 : static_cast<uint32_t>(s.quality);
  h.fingerprint = fingerprint;
  h.classes = classes;
  return h;
}

[[noreturn]] void stopped(const SplitReport& r, int64_t done) {
  throw Interrupted("pack stopped after " + std::to_string(done) + " of " + std::to_string(r.inputs) + " " + r.name +
                    " images; " + r.file + ".part keeps them: run the same command again to continue");
}

SplitReport pack_split(const SplitInputs& split, const std::vector<std::string>& classes, const PackSettings& s,
                       std::ostream& err) {
  SplitReport r;
  r.name = split.name;
  r.file = (fs::path(s.out) / (split.name + ".pack")).string();
  r.layout = split.layout;
  r.inputs = static_cast<int64_t>(split.images.size());
  r.ignored = split.ignored;
  const uint64_t fingerprint = inputs_fingerprint(split, classes, s);
  uint64_t count = 0;
  if (complete_pack_matches(r.file, fingerprint, &count)) {
    r.up_to_date = true;
    r.packed = static_cast<int64_t>(count);
    r.bytes = fs::file_size(r.file);
    return r;
  }
  PartFile part(r.file, header_for(classes, s, fingerprint));
  r.resumed_at = static_cast<int64_t>(part.records().size());
  for (int64_t i = 0; i < r.resumed_at; ++i)
    if (part.records()[i].status != SkipReason::kNone)
      r.skipped.push_back({split.images[i].path, part.records()[i].status, ""});
  Meter meter(err, s, split.name, r.inputs, r.resumed_at);
  {
    Pipeline pipeline(split.images, r.resumed_at, s);
    for (int64_t i = r.resumed_at; i < r.inputs; ++i) {
      if (experiments::stop_requested()) stopped(r, i);
      const Encoded e = pipeline.take(i);
      part.append(e.bytes, split.images[i].label, e.height, e.width, e.status);
      if (e.status != SkipReason::kNone) r.skipped.push_back({split.images[i].path, e.status, e.detail});
      if (s.after_image) s.after_image(split.name, i + 1);
      meter.update(i + 1);
    }
  }
  meter.finish();
  if (experiments::stop_requested()) stopped(r, r.inputs);
  r.bytes = part.finish();
  r.packed = r.inputs - static_cast<int64_t>(r.skipped.size());
  r.seconds = meter.seconds();
  return r;
}

}  // namespace

uint64_t inputs_fingerprint(const SplitInputs& split, const std::vector<std::string>& classes, const PackSettings& s) {
  uint64_t h = kFnvBasis;
  auto add = [&h](const void* p, size_t n) { h = fnv1a(p, n, h); };
  const uint32_t fields[] = {kVersion, s.raw ? 1u : 0u, static_cast<uint32_t>(s.size),
                             s.raw ? 0u : static_cast<uint32_t>(s.quality)};
  add(fields, sizeof fields);
  for (const std::string& c : classes) add(c.c_str(), c.size() + 1);
  for (const InputImage& in : split.images) {
    std::error_code ec;
    const uint64_t bytes = fs::file_size(in.path, ec);
    // Relative to ROOT: `htga pack ./data/x` resumes what `htga pack data/x` began.
    const std::string relative = fs::path(in.path).lexically_relative(s.root).string();
    add(relative.c_str(), relative.size() + 1);
    add(&bytes, sizeof bytes);
    add(&in.label, sizeof in.label);
  }
  return h;
}

PackReport pack_dataset(const PackSettings& s, std::ostream& err) {
  check_settings(s);
  const DatasetInputs inputs = scan_inputs(s.root);
  check_output_folder(s.out);
  fs::create_directories(s.out);
  PackReport report{inputs.classes, {}};
  report.splits.push_back(pack_split(inputs.train, inputs.classes, s, err));
  if (inputs.has_val) report.splits.push_back(pack_split(inputs.val, inputs.classes, s, err));
  return report;
}

}  // namespace htga::pack
