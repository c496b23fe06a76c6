// htga pack and its reader, on synthetic photos-sized JPEGs (issue 18's targets): images/s on
// one core decoding q90 256-px JPEGs into 224 random-resized crops (target >= 500), the same
// from a raw pack, the pack itself, and the resident memory while streaming a pack (target:
// flat, whatever the pack's size). Prints one JSON object.
// Usage: htga_bench_pack [--images N] [--dir DIR] [--epochs E]

#include "experiments/pack/pack.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>

#include "experiments/pack/augment.h"
#include "experiments/pack/batch_stream.h"
#include "experiments/pack/reader.h"

namespace fs = std::filesystem;
using namespace htga::pack;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// VmRSS and VmHWM of this process, in MB.
std::pair<double, double> memory_mb() {
  std::ifstream in("/proc/self/status");
  double rss = 0, hwm = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stod(line.substr(6)) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stod(line.substr(6)) / 1024;
  }
  return {rss, hwm};
}

/// ImageNet-like sizes (about 500x375) with texture and noise, so that q90 JPEGs have a
/// photo's size (tens of kB).
void make_inputs(const fs::path& root, int images) {
  std::mt19937 rng(1);
  JpegCodec codec;
  for (int i = 0; i < images; ++i) {
    const int h = 300 + static_cast<int>(rng() % 200), w = 400 + static_cast<int>(rng() % 150);
    RgbImage img{h, w, std::vector<uint8_t>(static_cast<size_t>(h) * w * 3)};
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c)
          img.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(std::clamp(
              128 + 90 * std::sin(0.03 * x * (c + 1) + 0.05 * y + i) + static_cast<int>(rng() % 40) - 20, 0.0, 255.0));
    const fs::path file = root / "train" / ("c" + std::to_string(i % 10)) / ("img" + std::to_string(i) + ".JPEG");
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << codec.encode(img, 90);
  }
}

/// Images/s of one BatchStream worker over `epochs` epochs of random-resized crops; the memory
/// after each epoch.
double stream_rate(const PackFile& pack, int epochs, std::ostringstream& memory) {
  int64_t images = 0;
  const double start = now_s();
  for (int e = 0; e < epochs; ++e) {
    BatchStreamOptions o;
    o.batch_size = 64;
    o.crop = 224;
    o.epoch = e;
    o.loader_threads = 1;
    o.ring = 2;
    BatchStream stream(pack, o);
    while (auto b = stream.next()) {
      images += b->size;
      stream.release(*b);
    }
    const auto [rss, hwm] = memory_mb();
    memory << (e ? ", " : "") << "[" << rss << ", " << hwm << "]";
  }
  return images / (now_s() - start);
}

}  // namespace

int main(int argc, char** argv) {
  int images = 300, epochs = 3;
  std::string dir = (fs::temp_directory_path() / "htga-bench-pack").string();
  for (int a = 1; a + 1 < argc; a += 2) {
    if (!std::strcmp(argv[a], "--images")) images = std::stoi(argv[a + 1]);
    if (!std::strcmp(argv[a], "--dir")) dir = argv[a + 1];
    if (!std::strcmp(argv[a], "--epochs")) epochs = std::stoi(argv[a + 1]);
  }
  fs::remove_all(dir);
  make_inputs(fs::path(dir) / "in", images);
  PackSettings s;
  s.root = dir + "/in";
  s.out = dir + "/jpeg";
  s.threads = 1;
  s.progress_every_s = 0;
  std::ostringstream quiet;
  double t = now_s();
  pack_dataset(s, quiet);
  const double pack_rate = images / (now_s() - t);
  s.out = dir + "/raw";
  s.raw = true;
  pack_dataset(s, quiet);
  const auto before = memory_mb();
  std::ostringstream jpeg_memory, raw_memory;
  const PackFile jpeg(dir + "/jpeg/train.pack"), raw(dir + "/raw/train.pack");
  const double jpeg_rate = stream_rate(jpeg, epochs, jpeg_memory);
  const double raw_rate = stream_rate(raw, epochs, raw_memory);
  std::cout << "{\"images\": " << images << ", \"pack_jpeg_q90_256_images_per_s_1_thread\": " << pack_rate
            << ", \"jpeg_pack_mb\": " << fs::file_size(dir + "/jpeg/train.pack") / 1e6
            << ", \"raw_pack_mb\": " << fs::file_size(dir + "/raw/train.pack") / 1e6
            << ", \"rrc224_from_jpeg_images_per_s_per_core\": " << jpeg_rate
            << ", \"rrc224_from_raw_images_per_s_per_core\": " << raw_rate << ", \"rss_hwm_mb_before_streaming\": ["
            << before.first << ", " << before.second << "], \"rss_hwm_mb_after_each_jpeg_epoch\": ["
            << jpeg_memory.str() << "], \"rss_hwm_mb_after_each_raw_epoch\": [" << raw_memory.str() << "]}"
            << std::endl;
  fs::remove_all(dir);
}
