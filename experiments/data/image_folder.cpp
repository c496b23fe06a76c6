#include "experiments/data/image_folder.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "experiments/error.h"

// The implementations are compiled here with internal linkage (no libstb at run time, and no
// clash with another copy in the process); PNG and JPEG only.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#pragma GCC diagnostic pop

namespace htga::data {

namespace fs = std::filesystem;

namespace {

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

/// Sorted sub-folders of `dir` (hidden ones left out).
std::vector<std::string> sub_folders(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !hidden(e.path())) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Sorted image files of `dir`.
std::vector<std::string> images_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && !hidden(e.path()) && is_image(e.path())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};

}  // namespace

std::string image_folder_test_dir(const std::string& root) {
  if (!fs::is_directory(root))
    throw InputError(root + (fs::exists(root) ? ": not a folder (the dataset's path names its folder)"
                                              : ": dataset folder not found"));
  if (!fs::is_directory(root + "/train")) throw InputError(root + ": missing train/ (one sub-folder per class)");
  for (const char* name : {"/val", "/test"})
    if (fs::is_directory(root + name)) return root + name;
  throw InputError(root + ": missing val/ or test/ (one sub-folder per class)");
}

ImageFolderListing list_image_folder(const std::string& root) {
  ImageFolderListing l;
  l.test_dir = image_folder_test_dir(root);
  const std::string train_dir = root + "/train";
  try {
    l.classes = sub_folders(train_dir);
    if (l.classes.empty()) throw InputError(train_dir + ": no class folders");
    std::map<std::string, int64_t> index;
    for (size_t c = 0; c < l.classes.size(); ++c) {
      index[l.classes[c]] = static_cast<int64_t>(c);
      const std::string dir = train_dir + "/" + l.classes[c];
      auto files = images_in(dir);
      if (files.empty()) throw InputError(dir + ": no .png or .jpg images");
      for (auto& f : files) l.train.push_back({std::move(f), static_cast<int64_t>(c)});
    }
    for (const std::string& name : sub_folders(l.test_dir)) {
      auto it = index.find(name);
      if (it == index.end())
        throw InputError(l.test_dir + "/" + name + ": class \"" + name + "\" is not a class of " + train_dir);
      for (auto& f : images_in(l.test_dir + "/" + name)) l.test.push_back({std::move(f), it->second});
    }
    if (l.test.empty()) throw InputError(l.test_dir + ": no .png or .jpg images in class folders");
  } catch (const fs::filesystem_error& e) {
    throw InputError(root + ": cannot list: " + e.what());
  }
  return l;
}

torch::Tensor decode_image(const std::string& path, const ImageFolderOptions& options) {
  const int channels = static_cast<int>(options.channels);
  const int size = static_cast<int>(options.size);
  int w = 0, h = 0, source_channels = 0;
  std::unique_ptr<unsigned char, StbFree> pixels(stbi_load(path.c_str(), &w, &h, &source_channels, channels));
  if (!pixels) throw InputError(path + ": cannot decode image: " + stbi_failure_reason());
  // The central square, then resized: the aspect ratio is kept, as with torchvision's
  // Resize(size) + CenterCrop(size).
  const int side = std::min(w, h);
  const int x0 = (w - side) / 2, y0 = (h - side) / 2;
  const unsigned char* square = pixels.get() + (static_cast<size_t>(y0) * w + x0) * channels;
  auto hwc = torch::empty({size, size, channels}, torch::kUInt8);
  if (side == size) {
    for (int y = 0; y < size; ++y)
      std::copy(square + static_cast<size_t>(y) * w * channels, square + (static_cast<size_t>(y) * w + size) * channels,
                hwc.data_ptr<uint8_t>() + static_cast<size_t>(y) * size * channels);
  } else if (!stbir_resize_uint8(square, side, side, w * channels, hwc.data_ptr<uint8_t>(), size, size, 0, channels)) {
    throw InputError(path + ": cannot resize image");
  }
  return hwc.permute({2, 0, 1}).contiguous();
}

RawDataset load_image_folder(const std::string& root, const ImageFolderOptions& options) {
  if (options.channels != 1 && options.channels != 3)
    throw InputError(root + ": channels must be 1 or 3, got " + std::to_string(options.channels));
  if (options.size < 1) throw InputError(root + ": size must be positive, got " + std::to_string(options.size));
  const ImageFolderListing listing = list_image_folder(root);
  RawDataset d;
  d.num_classes = static_cast<int64_t>(listing.classes.size());
  for (bool train : {true, false}) {
    const std::vector<ImageFile>& files = train ? listing.train : listing.test;
    const auto n = static_cast<int64_t>(files.size());
    RawSplit& s = train ? d.train : d.test;
    s.images = torch::empty({n, options.channels, options.size, options.size}, torch::kUInt8);
    s.labels = torch::empty({n}, torch::kInt64);
    uint8_t* images = s.images.data_ptr<uint8_t>();
    const int64_t per_image = options.channels * options.size * options.size;
    // The error reported is that of the first bad file in listing order, whatever the threads did.
    std::mutex mu;
    int64_t error_at = n;
    std::optional<InputError> error;
    at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        try {
          auto image = decode_image(files[i].path, options);
          std::copy_n(image.data_ptr<uint8_t>(), per_image, images + i * per_image);
        } catch (const InputError& e) {
          std::lock_guard<std::mutex> lock(mu);
          if (i < error_at) {
            error_at = i;
            error = e;
          }
          return;
        }
      }
    });
    if (error) throw *error;
    int64_t* labels = s.labels.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) labels[i] = files[i].label;
  }
  return d;
}

}  // namespace htga::data
