#include "cli/cmd_pack.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "experiments/cpus.h"
#include "experiments/error.h"

namespace htga::cli {

namespace {

constexpr size_t kSkippedShown = 20;  // skipped images listed by name, per split

std::string megabytes(uint64_t bytes) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << bytes / 1e6 << " MB";
  return s.str();
}

void print_split(const pack::SplitReport& r, const pack::PackSettings& s, std::ostream& out) {
  out << r.name << ": " << r.packed << " of " << r.inputs << " images in " << r.file << " (" << megabytes(r.bytes)
      << ", " << (s.raw ? "raw" : "jpeg q" + std::to_string(s.quality)) << ", shorter side " << s.size
      << ", labels from " << r.layout << ")";
  if (r.up_to_date) out << ": already packed, left as it was";
  if (r.resumed_at > 0) out << ": resumed after " << r.resumed_at << " images done before";
  if (!r.up_to_date && r.seconds > 0)
    out << ", " << static_cast<int64_t>((r.inputs - r.resumed_at) / r.seconds) << " images/s";
  out << "\n";
  std::map<pack::SkipReason, int64_t> by_reason;
  for (const pack::SkippedImage& k : r.skipped) ++by_reason[k.reason];
  if (!r.skipped.empty()) {
    out << r.name << ": skipped " << r.skipped.size() << ":";
    for (const auto& [reason, n] : by_reason) out << " " << n << " " << pack::skip_reason_text(reason) << ";";
    out << "\n";
  }
  for (size_t i = 0; i < r.skipped.size() && i < kSkippedShown; ++i) {
    const pack::SkippedImage& k = r.skipped[i];
    out << "  skipped " << k.path << ": " << pack::skip_reason_text(k.reason)
        << (k.detail.empty() ? "" : " (" + k.detail + ")") << "\n";
  }
  if (r.skipped.size() > kSkippedShown) out << "  ... and " << r.skipped.size() - kSkippedShown << " more\n";
  if (r.ignored > 0) out << r.name << ": " << r.ignored << " files without an image extension left out\n";
}

}  // namespace

pack::PackSettings pack_settings(const PackOptions& o) {
  if (o.raw && o.quality) throw InputError("htga pack: --raw stores pixels, not JPEG: it takes no --quality");
  pack::PackSettings s;
  s.root = o.root;
  s.out = o.out;
  s.size = o.size;
  s.quality = o.quality.value_or(90);
  s.raw = o.raw;
  s.threads = o.threads > 0 ? o.threads : experiments::cpu_budget().usable;
  s.progress_bar = o.progress_bar;
  return s;
}

int run_pack(const PackOptions& options, std::ostream& out, std::ostream& err) {
  const pack::PackSettings settings = pack_settings(options);
  const pack::PackReport report = pack::pack_dataset(settings, err);
  out << report.classes.size() << " classes, " << settings.threads << " threads\n";
  for (const pack::SplitReport& r : report.splits) print_split(r, settings, out);
  if (report.splits.size() == 1) out << "val: no " << options.root << "/val folder, no val.pack\n";
  return 0;
}

void setup_pack(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<PackOptions>();
  CLI::App* cmd = app.add_subcommand(
      "pack", "pack an ImageNet-like folder (train/<class>/..., val/...) into DIR/train.pack and DIR/val.pack");
  cmd->add_option("root", options->root, "folder with train/ and optionally val/")->required();
  cmd->add_option("--out", options->out, "output folder")->required();
  cmd->add_option("--size", options->size, "shorter side of the stored images, pixels")->capture_default_str();
  cmd->add_option("--quality", options->quality, "JPEG quality 1..100 (default 90)");
  cmd->add_flag("--raw", options->raw, "store uint8 RGB pixels instead of JPEG (larger, faster to read)");
  cmd->add_option("--threads", options->threads, "worker threads (default: the CPUs htga may use)");
  cmd->callback([options, &exit_code] {
    PackOptions o = *options;
    o.progress_bar = isatty(STDERR_FILENO);
    exit_code = run_pack(o, std::cout, std::cerr);
  });
}

}  // namespace htga::cli
