#include "cli/cmd_data.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli/options.h"
#include "experiments/error.h"

namespace htga::cli {

namespace fs = std::filesystem;

namespace {

std::string status_word(const fetch::DatasetEntry& entry, const fetch::DatasetStatus& s) {
  if (!entry.not_fetchable.empty() && !s.present) return "manual";
  if (!s.present) return "absent";
  return s.complete ? "complete" : "incomplete";
}

std::string source_line(const fetch::DatasetEntry& entry) {
  if (entry.files.empty()) return "not downloadable; " + entry.licence;
  std::string line = entry.files.front().urls.front();
  if (entry.files.size() > 1) line += " (+" + std::to_string(entry.files.size() - 1) + " files)";
  return line + "; " + entry.licence;
}

}  // namespace

int run_data_fetch(const DataFetchOptions& options, std::ostream& out, std::ostream& err) {
  if (options.names.empty()) throw InputError("htga data fetch: name a dataset (htga data list shows them)");
  std::vector<const fetch::DatasetEntry*> entries;
  for (const std::string& name : options.names) entries.push_back(&fetch::find_dataset(name));  // all known first
  for (const fetch::DatasetEntry* entry : entries) {
    const fetch::FetchResult r = fetch::fetch_dataset(*entry, options.fetch, err);
    out << entry->name << ": " << (r.already_present ? "already complete in " : "fetched into ") << r.path;
    if (!entry->grid_path.empty()) out << " (grids: \"path\": \"" << entry->grid_path << "\")";
    out << "\n";
    for (const std::string& f : r.unverified)
      out << entry->name << ": warning: " << f << " has no published checksum; kept unverified\n";
  }
  return 0;
}

int run_data_list(const std::string& root, std::ostream& out) {
  out << std::left << std::setw(15) << "dataset" << std::setw(12) << "status" << std::setw(10) << "size"
      << std::setw(28) << "folder"
      << "source\n";
  for (const fetch::DatasetEntry& entry : fetch::datasets()) {
    const fetch::DatasetStatus s = fetch::dataset_status(entry, root);
    out << std::left << std::setw(15) << entry.name << std::setw(12) << status_word(entry, s) << std::setw(10)
        << (s.present ? fetch::human_size(s.bytes) : "-") << std::setw(28)
        << (fs::path(root) / entry.folder).string() + "/"
        << " " << source_line(entry) << "\n";
  }
  return 0;
}

int run_data_verify(const std::vector<std::string>& names, const std::string& root, std::ostream& out) {
  if (names.empty()) throw InputError("htga data verify: name a dataset (htga data list shows them)");
  std::vector<const fetch::DatasetEntry*> entries;
  for (const std::string& name : names) entries.push_back(&fetch::find_dataset(name));
  bool good = true;
  for (const fetch::DatasetEntry* entry : entries) {
    const fetch::VerifyResult r = fetch::verify_dataset(*entry, root);
    for (const std::string& line : r.ok) out << entry->name << ": ok: " << line << "\n";
    for (const std::string& line : r.notes) out << entry->name << ": note: " << line << "\n";
    for (const std::string& line : r.problems) out << entry->name << ": FAILED: " << line << "\n";
    out << entry->name << ": " << (r.good() ? "verified" : "NOT verified") << "\n";
    good = good && r.good();
  }
  return good ? 0 : 1;
}

void setup_data(CLI::App& app, int& exit_code) {
  CLI::App* data = app.add_subcommand("data", "public datasets: fetch (download, verify, unpack), list, verify");
  data->require_subcommand(1);
  auto root = std::make_shared<std::string>("data");
  auto fetch_options = std::make_shared<DataFetchOptions>();
  auto names = std::make_shared<std::vector<std::string>>();

  CLI::App* fetch = data->add_subcommand("fetch", "download a dataset, check its published checksum, unpack it");
  fetch->add_option("names", fetch_options->names, "datasets (htga data list)")->required();
  fetch->add_option("--root", fetch_options->fetch.root, "data root the grids' paths start from")
      ->check(non_empty_path())
      ->capture_default_str();
  fetch->add_option("--mirror", fetch_options->fetch.mirror,
                    "fetch each file as BASE/<its official file name>: an http(s) URL, file:// URL or a folder "
                    "(default: $HTGA_DATA_MIRROR)");
  fetch->add_flag("--force", fetch_options->fetch.force, "replace the dataset's folder when present");
  fetch->callback([fetch_options, &exit_code] {
    DataFetchOptions o = *fetch_options;
    if (o.fetch.mirror.empty())
      if (const char* env = std::getenv(fetch::kMirrorEnv)) o.fetch.mirror = env;
    if (const char* env = std::getenv(fetch::kChecksumsOverrideEnv); env && *env)
      o.fetch.checksum_override = fetch::read_checksum_override(env);
    o.fetch.progress = isatty(STDERR_FILENO);
    exit_code = run_data_fetch(o, std::cout, std::cerr);
  });

  CLI::App* list = data->add_subcommand("list", "each dataset: present and complete under the root, size, source");
  list->add_option("--root", *root, "data root")->check(non_empty_path())->capture_default_str();
  list->callback([root, &exit_code] { exit_code = run_data_list(*root, std::cout); });

  CLI::App* verify = data->add_subcommand("verify", "check a dataset's files against their checksums");
  verify->add_option("names", *names, "datasets (htga data list)")->required();
  verify->add_option("--root", *root, "data root")->check(non_empty_path())->capture_default_str();
  verify->callback([root, names, &exit_code] { exit_code = run_data_verify(*names, *root, std::cout); });
}

}  // namespace htga::cli
