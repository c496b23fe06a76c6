#include "experiments/pack/inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "experiments/error.h"

namespace htga::pack {

namespace fs = std::filesystem;

namespace {

using ClassIndex = std::map<std::string, int32_t>;

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

/// Sorted image files directly in `dir`; counts the other files in `ignored`.
std::vector<std::string> list_images(const fs::path& dir, int64_t& ignored) {
  std::vector<std::string> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (hidden(e.path()) || !e.is_regular_file()) continue;
    if (is_image_name(e.path().filename().string())) {
      files.push_back(e.path().string());
    } else {
      ++ignored;
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> subfolders(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (!hidden(e.path()) && e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

int32_t label_of(const ClassIndex& classes, const std::string& wnid, const std::string& where) {
  auto it = classes.find(wnid);
  if (it == classes.end()) throw InputError(where + ": class \"" + wnid + "\" is not one of the training classes");
  return it->second;
}

SplitInputs class_folders(const fs::path& dir, const ClassIndex& classes, const std::string& name) {
  SplitInputs split{name, {}, 0, "class folders"};
  for (const std::string& c : subfolders(dir)) {
    const int32_t label = label_of(classes, c, (dir / c).string());
    for (std::string& f : list_images(dir / c, split.ignored)) split.images.push_back({std::move(f), label});
  }
  std::sort(split.images.begin(), split.images.end(), [](auto& a, auto& b) { return a.path < b.path; });
  return split;
}

/// The first of `names` present in ROOT/val or ROOT.
fs::path find_label_file(const fs::path& root, std::initializer_list<const char*> names) {
  for (const char* n : names)
    for (const fs::path& p : {root / "val" / n, root / n})
      if (fs::is_regular_file(p)) return p;
  return {};
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path.string() + ": cannot read");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

std::string first_token(const std::string& s) {
  std::istringstream in(s);
  std::string t;
  in >> t;
  return t;
}

std::string stem(const std::string& path) { return fs::path(path).stem().string(); }

/// Flat images labelled by `wnid_of_stem` (file stem -> wnid).
SplitInputs label_flat(const fs::path& dir, const std::map<std::string, std::string>& wnid_of_stem,
                       const ClassIndex& classes, const fs::path& label_file) {
  SplitInputs split{"val", {}, 0, label_file.filename().string()};
  for (std::string& f : list_images(dir, split.ignored)) {
    auto it = wnid_of_stem.find(stem(f));
    if (it == wnid_of_stem.end()) throw InputError(f + ": no label in " + label_file.string());
    split.images.push_back({f, label_of(classes, it->second, f)});
  }
  if (split.images.size() != wnid_of_stem.size())
    throw InputError(label_file.string() + ": " + std::to_string(wnid_of_stem.size()) + " labels for " +
                     std::to_string(split.images.size()) + " images in " + dir.string());
  return split;
}

SplitInputs kaggle_val(const fs::path& dir, const fs::path& csv, const ClassIndex& classes) {
  std::map<std::string, std::string> wnid_of_stem;
  const std::vector<std::string> lines = read_lines(csv);
  for (size_t i = 1; i < lines.size(); ++i) {  // line 0: ImageId,PredictionString
    if (lines[i].empty()) continue;
    const size_t comma = lines[i].find(',');
    if (comma == std::string::npos)
      throw InputError(csv.string() + ":" + std::to_string(i + 1) + ": expected ImageId,PredictionString");
    wnid_of_stem[lines[i].substr(0, comma)] = first_token(lines[i].substr(comma + 1));
  }
  return label_flat(dir, wnid_of_stem, classes, csv);
}

SplitInputs devkit_val(const fs::path& dir, const fs::path& truth, const fs::path& synsets, const ClassIndex& classes) {
  if (synsets.empty())
    throw InputError(truth.string() + ": needs the synset order, LOC_synset_mapping.txt or synsets.txt, beside it");
  std::vector<std::string> order;
  for (const std::string& line : read_lines(synsets))
    if (!first_token(line).empty()) order.push_back(first_token(line));
  std::vector<std::string> ids;
  for (const std::string& line : read_lines(truth))
    if (!first_token(line).empty()) ids.push_back(first_token(line));
  int64_t ignored = 0;
  const std::vector<std::string> files = list_images(dir, ignored);
  if (files.size() != ids.size())
    throw InputError(truth.string() + ": " + std::to_string(ids.size()) + " labels for " +
                     std::to_string(files.size()) + " images in " + dir.string());
  std::map<std::string, std::string> wnid_of_stem;
  for (size_t i = 0; i < ids.size(); ++i) {
    const long id = std::strtol(ids[i].c_str(), nullptr, 10);
    if (id < 1 || id > static_cast<long>(order.size()))
      throw InputError(truth.string() + ":" + std::to_string(i + 1) + ": ILSVRC2012_ID \"" + ids[i] +
                       "\" is not in 1.." + std::to_string(order.size()) + " (" + synsets.string() + ")");
    wnid_of_stem[stem(files[i])] = order[id - 1];
  }
  return label_flat(dir, wnid_of_stem, classes, truth);
}

SplitInputs tiny_val(const fs::path& dir, const fs::path& annotations, const ClassIndex& classes) {
  std::map<std::string, std::string> wnid_of_stem;
  for (const std::string& line : read_lines(annotations)) {
    std::istringstream in(line);
    std::string file, wnid;
    if (!(in >> file >> wnid)) continue;
    wnid_of_stem[stem(file)] = wnid;
  }
  return label_flat(dir / "images", wnid_of_stem, classes, annotations);
}

SplitInputs scan_val(const fs::path& root, const ClassIndex& classes) {
  const fs::path dir = root / "val";
  if (fs::is_regular_file(dir / "val_annotations.txt")) return tiny_val(dir, dir / "val_annotations.txt", classes);
  if (!subfolders(dir).empty()) return class_folders(dir, classes, "val");
  if (fs::path csv = find_label_file(root, {"LOC_val_solution.csv"}); !csv.empty())
    return kaggle_val(dir, csv, classes);
  if (fs::path truth = find_label_file(root, {"ILSVRC2012_validation_ground_truth.txt"}); !truth.empty())
    return devkit_val(dir, truth, find_label_file(root, {"LOC_synset_mapping.txt", "synsets.txt"}), classes);
  throw InputError(dir.string() +
                   ": flat images without labels: expected class folders, LOC_val_solution.csv, "
                   "ILSVRC2012_validation_ground_truth.txt with synsets.txt, or val_annotations.txt");
}

}  // namespace

bool is_image_name(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm"})
    if (ext == e) return true;
  return false;
}

DatasetInputs scan_inputs(const std::string& root_name) {
  const fs::path root(root_name);
  if (!fs::is_directory(root)) throw InputError(root_name + ": no such folder");
  if (!fs::is_directory(root / "train")) throw InputError((root / "train").string() + ": no such folder");
  DatasetInputs in;
  in.classes = subfolders(root / "train");
  if (in.classes.empty()) throw InputError((root / "train").string() + ": no class folders");
  ClassIndex index;
  for (size_t c = 0; c < in.classes.size(); ++c) index[in.classes[c]] = static_cast<int32_t>(c);
  in.train = class_folders(root / "train", index, "train");
  if (in.train.images.empty()) throw InputError((root / "train").string() + ": no images in its class folders");
  in.has_val = fs::is_directory(root / "val");
  if (in.has_val) in.val = scan_val(root, index);
  return in;
}

}  // namespace htga::pack
