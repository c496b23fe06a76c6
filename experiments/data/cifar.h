#pragma once
// CIFAR-10 and CIFAR-100 in the official binary format
// (https://www.cs.toronto.edu/~kriz/cifar.html): files of fixed-size records, each the label
// byte(s) followed by 3072 pixel bytes, the 1024 red values of the 32x32 image row by row, then
// green, then blue. CIFAR-10 records have one label byte (0..9); CIFAR-100 records have the
// coarse (0..19) then the fine (0..99) label. The format has no header and no magic number, so
// the checks are on the file size (a whole number of records) and on the label ranges.

#include <string>
#include <vector>

#include "experiments/data/dataset.h"

namespace htga::data {

enum class CifarFormat {
  kCifar10,         // 1 label byte, 10 classes
  kCifar100Fine,    // coarse and fine label bytes, the fine label (100 classes) kept
  kCifar100Coarse,  // coarse and fine label bytes, the coarse label (20 superclasses) kept
};

/// Image side and channels of every CIFAR image.
constexpr int64_t kCifarSide = 32, kCifarChannels = 3;

/// Number of classes of a format's kept label.
int64_t cifar_classes(CifarFormat format);

/// Reads one binary batch file. Throws InputError naming the file when it cannot be read, is
/// empty, is not a whole number of records, or holds a label out of range.
RawSplit read_cifar_file(const std::string& path, CifarFormat format);

/// The folder holding the batch files: `dir` itself, or the folder the official archive unpacks
/// to inside it (cifar-10-batches-bin, cifar-100-binary). Throws InputError when neither holds them.
std::string cifar_folder(const std::string& dir, CifarFormat format);

/// The batch files of a split, in order: data_batch_1..5.bin / test_batch.bin for CIFAR-10,
/// train.bin / test.bin for CIFAR-100.
std::vector<std::string> cifar_files(const std::string& folder, CifarFormat format, bool train);

/// Reads the training and test files of the folder `dir` (see cifar_folder).
RawDataset load_cifar(const std::string& dir, CifarFormat format);

}  // namespace htga::data
