#include "experiments/fetch/fetch.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>

#include "experiments/error.h"
#include "experiments/fetch/download.h"
#include "experiments/fetch/hash.h"
#include "experiments/fetch/unpack.h"

namespace htga::fetch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// Where a file came from and how it was checked, for the manifest.
struct Obtained {
  std::string name;      // its file name
  std::string path;      // the verified download under the staging folder
  std::string source;    // URL or path it came from
  std::string verified;  // "sha256 (source)" or "unverified: why"
};

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

std::vector<std::string> sources_for(const RemoteFile& f, const std::string& name, const FetchOptions& o) {
  if (!o.mirror.empty()) {
    if (is_remote(o.mirror)) return {o.mirror + (o.mirror.back() == '/' ? "" : "/") + name};
    const std::string dir = o.mirror.rfind("file://", 0) == 0 ? o.mirror.substr(7) : o.mirror;
    return {(fs::path(dir) / name).string()};
  }
  std::vector<std::string> out;
  if (o.use_local)
    for (const std::string& dir : f.local)
      if (fs::is_regular_file(fs::path(dir) / name)) out.push_back((fs::path(dir) / name).string());
  out.insert(out.end(), f.urls.begin(), f.urls.end());
  return out;
}

std::vector<Checksum> checksums_for(const RemoteFile& f, const std::string& name, const FetchOptions& o) {
  const auto it = o.checksum_override.find(name);
  if (it == o.checksum_override.end() || o.mirror.empty()) return f.checksums;
  return {{HashKind::kSha256, it->second, std::string(kChecksumsOverrideEnv) + " (testing only)"}};
}

std::string describe(const Checksum& c) { return std::string(name_of(c.kind)) + " " + c.hex + " (" + c.source + ")"; }

/// Checks the `.part` just transferred; renames it to `dest` when it verifies. Returns the
/// manifest's "verified" text, or "" after deleting a file that does not match.
std::string check_part(const RemoteFile& f, const std::vector<Checksum>& sums, const std::string& part,
                       const std::string& dest, const std::string& source, std::ostream& err,
                       std::vector<std::string>& errors) {
  std::string verified;
  if (sums.empty()) {
    const std::string sha = file_digest(part, HashKind::kSha256);
    err << "htga: warning: " << fs::path(dest).filename().string() << ": no published checksum (" << f.unknown_reason
        << "); kept unverified, sha256 " << sha << "\n";
    verified = "unverified (" + f.unknown_reason + "); sha256 at fetch " + sha;
  } else if (const Checksum* m = matching_checksum(part, sums)) {
    verified = describe(*m);
  } else {
    const std::string got = file_digest(part, sums.front().kind);
    fs::remove(part);
    errors.push_back(source + ": checksum mismatch: " + name_of(sums.front().kind) + " " + got + ", expected " +
                     describe(sums.front()) + "; the corrupt download was deleted");
    return "";
  }
  fs::rename(part, dest);
  return verified;
}

/// Gets one file into the staging folder, verified: a verified earlier download, else each
/// source in turn. Throws FetchError naming every source's failure.
Obtained obtain(const RemoteFile& f, const FetchOptions& o, const fs::path& staging, std::ostream& err) {
  Obtained got;
  got.name = url_file_name(f.urls.at(0));
  got.path = (staging / got.name).string();
  const std::string part = got.path + ".part";
  const std::vector<Checksum> sums = checksums_for(f, got.name, o);
  if (fs::is_regular_file(got.path)) {
    if (const Checksum* m = matching_checksum(got.path, sums); m && !sums.empty()) {
      got.source = "an earlier download (" + got.path + ")";
      got.verified = describe(*m);
      return got;
    }
    fs::remove(got.path);
  }
  std::vector<std::string> errors;
  for (const std::string& source : sources_for(f, got.name, o)) {
    try {
      DownloadOptions d{o.connect_timeout_s, o.stall_timeout_s, o.attempts, o.progress, got.name};
      if (is_remote(source))
        download_url(source, part, d, err);
      else
        copy_local(source, part);
    } catch (const DownloadError& e) {
      errors.push_back(e.what());
      continue;
    }
    got.verified = check_part(f, sums, part, got.path, source, err, errors);
    if (got.verified.empty()) continue;
    got.source = source;
    return got;
  }
  const std::string kept = fs::exists(part) ? "; the partial download " + part + " resumes on the next try" : "";
  const std::string what_now =
      o.mirror.empty() ? "try again later, or fetch from a mirror with --mirror BASE (htga data list shows "
                         "each file's source)"
                       : "check that the mirror " + o.mirror + " holds " + got.name + ", or fetch without --mirror";
  throw FetchError(got.name + ": " + join(errors, "; ") + kept + "; the data root is unchanged: " + what_now);
}

/// Puts a verified download into the staging copy of the root: kept as it is, or unpacked.
void place(const RemoteFile& f, const Obtained& got, const fs::path& work) {
  const fs::path dir = work / f.into;
  fs::create_directories(dir);
  if (f.unpack != Unpack::kNone) return unpack_archive(got.path, dir.string());
  std::error_code ec;
  fs::create_hard_link(got.path, dir / got.name, ec);  // the download stays for a retry
  if (ec) fs::copy_file(got.path, dir / got.name, fs::copy_options::overwrite_existing);
}

uint64_t folder_bytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

void write_manifest(const DatasetEntry& entry, const fs::path& folder, const std::vector<Obtained>& got) {
  json sources = json::array();
  for (const Obtained& g : got) sources.push_back({{"file", g.name}, {"from", g.source}, {"verified", g.verified}});
  json files = json::object();
  for (const auto& e : fs::recursive_directory_iterator(folder))
    if (e.is_regular_file() && e.path().filename() != kManifestName)
      files[fs::relative(e.path(), folder).generic_string()] = file_digest(e.path().string(), HashKind::kSha256);
  std::ofstream out(folder / kManifestName);
  out << json{{"dataset", entry.name}, {"sources", sources}, {"sha256", files}}.dump(1) << "\n";
  if (!out.flush()) throw FetchError((folder / kManifestName).string() + ": cannot write");
}

/// Renames the complete folder into place; a folder that was there (--force) goes only after.
void move_into_place(const DatasetEntry& entry, const fs::path& work, const fs::path& root, const fs::path& staging) {
  const fs::path target = root / entry.folder;
  const fs::path old = staging / (entry.name + ".old");
  fs::remove_all(old);
  const bool replace = fs::exists(target);
  if (replace) fs::rename(target, old);
  try {
    fs::rename(work / entry.folder, target);
  } catch (...) {
    if (replace) fs::rename(old, target);
    throw;
  }
  fs::remove_all(old);
}

void check_layout(const DatasetEntry& entry, const fs::path& work) {
  for (const std::string& p : entry.expected)
    if (!fs::exists(work / p))
      throw FetchError(entry.name + ": the files fetched hold no " + p +
                       "; the official distribution may have changed: please report it");
  for (const auto& e : fs::directory_iterator(work))
    if (e.path().filename() != entry.folder)
      throw FetchError(entry.name + ": the archives hold " + e.path().filename().string() + " beside " + entry.folder +
                       "; the official distribution may have changed: please report it");
}

/// The data root must be a folder, or a path whose nearest existing folder this process may write.
void check_root(const fs::path& root) {
  std::error_code ec;
  if (fs::exists(root, ec) && !fs::is_directory(root, ec))
    throw InputError(root.string() + ": not a folder (the data root, --root)");
  fs::path p = fs::absolute(root, ec);
  while (!p.empty() && p != p.parent_path() && !fs::exists(p, ec)) p = p.parent_path();
  if (!fs::is_directory(p, ec))
    throw InputError(root.string() + ": cannot be made: " + p.string() + " is not a folder (the data root, --root)");
  if (::access(p.c_str(), W_OK) != 0)
    throw InputError(root.string() + ": cannot write there: " + p.string() +
                     " is not writable (the data root, --root)");
}

/// The dataset present already: nothing to do when complete, an error when something else is there.
bool present_already(const DatasetEntry& entry, const FetchOptions& o) {
  const DatasetStatus s = dataset_status(entry, o.root);
  if (!s.present || o.force) return false;
  if (s.complete) return true;
  throw InputError((fs::path(o.root) / entry.folder).string() + ": present but incomplete (no " + s.missing.front() +
                   "); move it away, or pass --force to replace it");
}

/// Removes what a fetch staged, keeping verified downloads and resumable `.part` files, and the
/// data root when this fetch made it and it stayed empty.
void clean_up(const fs::path& staging, const fs::path& work, bool made_root) {
  std::error_code ec;
  fs::remove_all(work, ec);
  if (fs::is_directory(staging, ec) && fs::is_empty(staging, ec)) fs::remove(staging, ec);
  if (made_root && fs::is_empty(staging.parent_path(), ec)) fs::remove(staging.parent_path(), ec);
}

}  // namespace

FetchResult fetch_dataset(const DatasetEntry& entry, const FetchOptions& o, std::ostream& err) {
  if (!entry.not_fetchable.empty()) throw InputError(entry.not_fetchable);
  check_root(o.root);
  FetchResult result;
  result.path = (fs::path(o.root) / entry.folder).string();
  if (present_already(entry, o)) {
    result.already_present = true;
    return result;
  }
  if (!o.checksum_override.empty() && !o.mirror.empty())
    err << "htga: WARNING: " << kChecksumsOverrideEnv << " is set: files named there are checked against its "
        << "checksums, NOT the published ones (for tests only)\n";
  else if (!o.checksum_override.empty())
    err << "htga: warning: " << kChecksumsOverrideEnv << " ignored: it applies only with --mirror\n";
  const fs::path root(o.root), staging = root / kStagingDir, work = staging / (entry.name + ".unpack");
  const bool made_root = !fs::exists(root);
  std::vector<Obtained> got;
  try {
    fs::create_directories(staging);
    fs::remove_all(work);
    fs::create_directories(work);
    for (const RemoteFile& f : entry.files) {
      got.push_back(obtain(f, o, staging, err));
      place(f, got.back(), work);
      if (got.back().verified.rfind("unverified", 0) == 0) result.unverified.push_back(got.back().name);
    }
    run_post_step(entry.post, work.string());
    check_layout(entry, work);
    write_manifest(entry, work / entry.folder, got);
    move_into_place(entry, work, root, staging);
  } catch (const fs::filesystem_error& e) {
    clean_up(staging, work, made_root);
    throw FetchError(entry.name + ": " + e.what());
  } catch (...) {
    clean_up(staging, work, made_root);
    throw;
  }
  for (const Obtained& g : got) fs::remove(g.path);
  clean_up(staging, work, made_root);
  return result;
}

DatasetStatus dataset_status(const DatasetEntry& entry, const std::string& root) {
  DatasetStatus s;
  const fs::path folder = fs::path(root) / entry.folder;
  s.present = fs::is_directory(folder);
  for (const std::string& p : entry.expected)
    if (!fs::exists(fs::path(root) / p)) s.missing.push_back(p);
  s.complete = s.present && s.missing.empty();
  if (s.present) s.bytes = folder_bytes(folder);
  s.fetched = fs::is_regular_file(folder / kManifestName);
  return s;
}

std::map<std::string, std::string> read_checksum_override(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot read (" + kChecksumsOverrideEnv + ")");
  std::map<std::string, std::string> out;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find_first_of(" \t");
    const size_t name = line.find_first_not_of(" \t*", space);
    const std::string hex = line.substr(0, space);
    if (space != 64 || name == std::string::npos || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw InputError(path + ":" + std::to_string(number) + ": expected \"<sha256>  <file name>\"");
    out[fs::path(line.substr(name)).filename().string()] = hex;
  }
  return out;
}

std::string human_size(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) v /= 1000, ++u;
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return text;
}

}  // namespace htga::fetch
