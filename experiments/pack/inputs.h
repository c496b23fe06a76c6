#pragma once
// The images of an ImageNet-like folder, found and labelled before anything is packed:
//   ROOT/train/<class>/<image>        class = folder name; labels = the sorted class names
//   ROOT/val/ in one of four layouts, labelled with the training classes:
//     class folders     ROOT/val/<class>/<image>                      (Imagenette, torchvision)
//     Kaggle            flat ROOT/val/<image> + LOC_val_solution.csv  (ImageId,PredictionString;
//                       the string's first token is the wnid)
//     ILSVRC2012 devkit flat ROOT/val/<image> + ILSVRC2012_validation_ground_truth.txt (one
//                       1-based ILSVRC2012_ID per line, in sorted file-name order) + a synset
//                       order file, LOC_synset_mapping.txt or synsets.txt (a wnid first on each
//                       line, in the devkit's order)
//     Tiny-ImageNet     ROOT/val/val_annotations.txt (file<TAB>wnid<TAB>...) + ROOT/val/images/
//   The label files are looked for in ROOT/val and ROOT.

#include <cstdint>
#include <string>
#include <vector>

namespace htga::pack {

struct InputImage {
  std::string path;  // full path
  int32_t label = 0;
};

struct SplitInputs {
  std::string name;                // "train" or "val"
  std::vector<InputImage> images;  // sorted by path
  int64_t ignored = 0;             // files without an image extension, left out
  std::string layout;              // how the labels were found ("class folders", "LOC_val_solution.csv", ...)
};

struct DatasetInputs {
  std::vector<std::string> classes;  // sorted; label = position
  SplitInputs train;
  bool has_val = false;
  SplitInputs val;
};

/// True for the extensions packed: .jpg .jpeg .png .bmp .gif .ppm .pgm (any case).
bool is_image_name(const std::string& name);

/// Lists and labels ROOT's images. Throws InputError naming the path for a missing ROOT or
/// train/, an empty class list, a validation image of an unknown class or without a label, a
/// label file that does not match the images.
DatasetInputs scan_inputs(const std::string& root);

}  // namespace htga::pack
