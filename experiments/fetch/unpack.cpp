#include "experiments/fetch/unpack.h"

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "experiments/fetch/fetch.h"

namespace htga::fetch {

namespace fs = std::filesystem;

namespace {

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

/// The entry's path relative to the destination, or empty when it is to be skipped. Throws for a
/// path that would leave the destination.
fs::path safe_path(const std::string& archive_path, const std::string& name) {
  const fs::path p = fs::path(name).lexically_normal();
  if (p.is_absolute() || name.empty()) throw FetchError(archive_path + ": entry \"" + name + "\" has an absolute path");
  for (const auto& part : p) {
    if (part == "..") throw FetchError(archive_path + ": entry \"" + name + "\" climbs out of the folder");
    if (part == "__MACOSX" || part.string().rfind("._", 0) == 0) return {};
  }
  return p == "." ? fs::path() : p;
}

void write_entry(archive* a, const std::string& archive_path, const fs::path& out) {
  fs::create_directories(out.parent_path());
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  if (!file) throw FetchError(out.string() + ": cannot write");
  const void* block = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  int r = ARCHIVE_OK;
  while ((r = archive_read_data_block(a, &block, &size, &offset)) == ARCHIVE_OK) {
    file.seekp(offset);
    file.write(static_cast<const char*>(block), static_cast<std::streamsize>(size));
  }
  if (r != ARCHIVE_EOF)
    throw FetchError(archive_path + ": damaged archive at " + out.filename().string() + ": " + archive_error_string(a));
  if (!file.flush()) throw FetchError(out.string() + ": cannot write (disk full?)");
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream s(line);
  std::string field;
  while (std::getline(s, field, '\t')) out.push_back(field);
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::ifstream open_in(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw FetchError(p.string() + ": missing after download");
  return in;
}

/// download_glue_data.py's format_mrpc: the header kept, the rows of the training file split
/// into train.tsv and dev.tsv by the (id1, id2) pairs of mrpc_dev_ids.tsv; test.tsv renumbered.
void split_mrpc(const fs::path& dir) {
  std::set<std::pair<std::string, std::string>> dev_ids;
  std::ifstream ids = open_in(dir / "mrpc_dev_ids.tsv");
  for (std::string line; std::getline(ids, line);) {
    const auto f = split_tabs(trim(line));
    if (f.size() == 2) dev_ids.insert({f[0], f[1]});
  }
  std::ifstream data = open_in(dir / "msr_paraphrase_train.txt");
  std::ofstream train(dir / "train.tsv", std::ios::binary), dev(dir / "dev.tsv", std::ios::binary);
  std::string header;
  std::getline(data, header);
  if (!header.empty() && header.back() == '\r') header.pop_back();
  train << header << "\n";
  dev << header << "\n";
  for (std::string line; std::getline(data, line);) {
    const auto f = split_tabs(trim(line));
    if (f.size() != 5) throw FetchError((dir / "msr_paraphrase_train.txt").string() + ": a row without 5 fields");
    (dev_ids.count({f[1], f[2]}) ? dev : train)
        << f[0] << '\t' << f[1] << '\t' << f[2] << '\t' << f[3] << '\t' << f[4] << '\n';
  }
  std::ifstream test_in = open_in(dir / "msr_paraphrase_test.txt");
  std::ofstream test(dir / "test.tsv", std::ios::binary);
  std::getline(test_in, header);
  test << "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
  int64_t index = 0;
  for (std::string line; std::getline(test_in, line);) {
    const auto f = split_tabs(trim(line));
    if (f.size() != 5) throw FetchError((dir / "msr_paraphrase_test.txt").string() + ": a row without 5 fields");
    test << index++ << '\t' << f[1] << '\t' << f[2] << '\t' << f[3] << '\t' << f[4] << '\n';
  }
  if (!train.flush() || !dev.flush() || !test.flush()) throw FetchError(dir.string() + ": cannot write the MRPC split");
}

/// Tiny ImageNet ships train/<wnid>/images/*.JPEG and val/images/*.JPEG with the classes in
/// val/val_annotations.txt; the image-folder loader reads <split>/<class>/*.JPEG.
void tiny_imagenet_folders(const fs::path& dir) {
  for (const auto& c : fs::directory_iterator(dir / "train")) {
    const fs::path images = c.path() / "images";
    if (!fs::is_directory(images)) continue;
    for (const auto& f : fs::directory_iterator(images)) fs::rename(f.path(), c.path() / f.path().filename());
    fs::remove(images);
  }
  std::ifstream notes = open_in(dir / "val" / "val_annotations.txt");
  for (std::string line; std::getline(notes, line);) {
    const auto f = split_tabs(trim(line));
    if (f.size() < 2) continue;
    fs::create_directories(dir / "val" / f[1]);
    fs::rename(dir / "val" / "images" / f[0], dir / "val" / f[1] / f[0]);
  }
  if (!fs::is_empty(dir / "val" / "images"))
    throw FetchError((dir / "val" / "images").string() + ": images without a class in val_annotations.txt");
  fs::remove(dir / "val" / "images");
}

}  // namespace

void unpack_archive(const std::string& archive_path, const std::string& dest) {
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_zip(a.get());
  if (archive_read_open_filename(a.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK)
    throw FetchError(archive_path + ": cannot open as an archive: " + archive_error_string(a.get()));
  archive_entry* entry = nullptr;
  int r = ARCHIVE_OK;
  while ((r = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    const fs::path rel = safe_path(archive_path, archive_entry_pathname(entry));
    if (rel.empty()) continue;
    const auto type = archive_entry_filetype(entry);
    if (type == AE_IFDIR)
      fs::create_directories(fs::path(dest) / rel);
    else if (type == AE_IFREG)
      write_entry(a.get(), archive_path, fs::path(dest) / rel);
  }
  if (r != ARCHIVE_EOF) throw FetchError(archive_path + ": damaged archive: " + archive_error_string(a.get()));
}

void run_post_step(PostStep step, const std::string& staging_root) {
  try {
    if (step == PostStep::kMrpc) split_mrpc(fs::path(staging_root) / "glue" / "MRPC");
    if (step == PostStep::kTinyImagenet) tiny_imagenet_folders(fs::path(staging_root) / "tiny-imagenet-200");
  } catch (const fs::filesystem_error& e) {
    throw FetchError(std::string("rearranging the unpacked files: ") + e.what());
  }
}

}  // namespace htga::fetch
