#pragma once
// Image folders, the layout of Imagenette and of ImageNet as torchvision's ImageFolder reads it:
//
//   root/train/<class>/<image>.png|.jpg|.jpeg
//   root/val/<class>/...   (or root/test/<class>/...)
//
// Classes are the sub-folders of train/, sorted by name, numbered from 0. Images are decoded with
// stb_image (Debian's libstb-dev), the central square cropped and resized to size x size
// (stb_image_resize: Mitchell filter when shrinking, cubic when enlarging), as grey or RGB.
// Other files (and hidden ones) are ignored.

#include <string>
#include <vector>

#include "experiments/data/dataset.h"

namespace htga::data {

struct ImageFolderOptions {
  int64_t size = 64;     // side of the square images after resizing, in pixels
  int64_t channels = 3;  // 1 (grey) or 3 (RGB)
};

/// One labelled image file.
struct ImageFile {
  std::string path;
  int64_t label = 0;
};

/// The listing of an image folder: class names and files of each split, in a fixed order.
struct ImageFolderListing {
  std::vector<std::string> classes;  // sorted sub-folder names of train/
  std::vector<ImageFile> train, test;
  std::string test_dir;  // root/val or root/test
};

/// The test split's folder, root/val or root/test. Throws InputError when root/train or both
/// are missing.
std::string image_folder_test_dir(const std::string& root);

/// Lists an image folder. Throws InputError when a folder is missing, train/ has no class
/// folders, a class has no image in train/, or a test class is not a training class.
ImageFolderListing list_image_folder(const std::string& root);

/// Decodes one image file to uint8 [channels, size, size]. Throws InputError naming the file
/// when it cannot be decoded.
torch::Tensor decode_image(const std::string& path, const ImageFolderOptions& options);

/// Lists and decodes every image (in parallel over the host's threads).
RawDataset load_image_folder(const std::string& root, const ImageFolderOptions& options);

}  // namespace htga::data
