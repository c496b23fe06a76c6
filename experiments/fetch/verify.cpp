// `htga data verify`: the files of a fetched dataset against the published checksums (the files
// kept as downloaded) and against the SHA-256 its fetch recorded (the unpacked ones).

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "experiments/fetch/fetch.h"
#include "experiments/fetch/hash.h"

namespace htga::fetch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// The files kept as they were downloaded, against the published checksums.
void verify_kept_files(const DatasetEntry& entry, const fs::path& root, VerifyResult& r) {
  for (const RemoteFile& f : entry.files) {
    if (f.unpack != Unpack::kNone) continue;
    const fs::path path = root / f.into / url_file_name(f.urls.at(0));
    const std::string rel = fs::relative(path, root).generic_string();
    if (!fs::is_regular_file(path)) continue;  // reported by the layout check, or not expected
    if (f.checksums.empty()) {
      r.notes.push_back(rel + ": no published checksum (" + f.unknown_reason + ")");
    } else if (const Checksum* m = matching_checksum(path.string(), f.checksums)) {
      r.ok.push_back(rel + ": " + name_of(m->kind) + " matches " + m->source);
    } else {
      r.problems.push_back(rel + ": does not match the published " + name_of(f.checksums.front().kind) + " (" +
                           f.checksums.front().source + ")");
    }
  }
}

/// Every file the fetch recorded, against the SHA-256 it had then.
void verify_recorded_files(const DatasetEntry& entry, const fs::path& folder, const fs::path& root, VerifyResult& r) {
  json manifest;
  try {
    std::ifstream in(folder / kManifestName);
    manifest = json::parse(in);
  } catch (const json::exception& e) {
    r.problems.push_back((folder / kManifestName).string() + ": unreadable fetch record: " + e.what());
    return;
  }
  for (const auto& s : manifest.value("sources", json::array()))
    if (s.value("verified", std::string()).find("unverified") == 0 ||
        s.value("verified", std::string()).find("testing only") != std::string::npos)
      r.notes.push_back(s.value("file", std::string()) + " was fetched " + s.value("verified", std::string()));
  size_t same = 0;
  const json recorded = manifest.value("sha256", json::object());  // items() does not keep a temporary alive
  for (const auto& [rel, sha] : recorded.items()) {
    const fs::path p = folder / rel;
    const std::string shown = fs::relative(p, root).generic_string();
    if (!fs::is_regular_file(p))
      r.problems.push_back(shown + ": missing (recorded when fetched)");
    else if (file_digest(p.string(), HashKind::kSha256) != sha.get<std::string>())
      r.problems.push_back(shown + ": changed since it was fetched (sha256 differs from the fetch record)");
    else
      ++same;
  }
  r.ok.push_back(entry.folder + ": " + std::to_string(same) + " files match the sha256 recorded when fetched");
}

}  // namespace

VerifyResult verify_dataset(const DatasetEntry& entry, const std::string& root_dir) {
  VerifyResult r;
  const fs::path root(root_dir), folder = root / entry.folder;
  if (!fs::is_directory(folder)) {
    r.problems.push_back(folder.string() + ": not present (htga data fetch " + entry.name + ")");
    return r;
  }
  for (const std::string& p : dataset_status(entry, root_dir).missing) r.problems.push_back(p + ": missing");
  verify_kept_files(entry, root, r);
  if (fs::is_regular_file(folder / kManifestName))
    verify_recorded_files(entry, folder, root, r);
  else
    r.notes.push_back(folder.string() + ": no fetch record (" + kManifestName +
                      "): files unpacked from archives cannot be checked");
  return r;
}

}  // namespace htga::fetch
