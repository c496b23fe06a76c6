#pragma once
// `htga pack ROOT --out DIR`: an ImageNet-like folder into DIR/train.pack and DIR/val.pack
// (experiments/pack/pack.h). Torch-free, like cli/cmd_data.h.

#include <iosfwd>
#include <optional>
#include <string>

#include "experiments/pack/pack.h"

namespace CLI {
class App;
}

namespace htga::cli {

struct PackOptions {
  std::string root;            // ImageNet-like folder
  std::string out;             // output folder
  int size = 256;              // shorter side, pixels
  std::optional<int> quality;  // JPEG quality; 90 when not given
  bool raw = false;            // uint8 HWC RGB instead of JPEG (excludes --quality)
  int threads = 0;             // workers; 0 = the CPUs this process may use
  bool progress_bar = false;   // a bar on a terminal; else a line every 30 s
};

/// The library's settings for `options` (InputError for --raw with --quality).
pack::PackSettings pack_settings(const PackOptions& options);

/// Packs, with progress on `err`, then a summary per split on `out`: images packed, skipped and
/// why. Returns 0; throws InputError (nothing written) or Interrupted (the journal kept).
int run_pack(const PackOptions& options, std::ostream& out, std::ostream& err);

/// Adds `htga pack` to `app`; its callback stores its exit status in `exit_code`.
void setup_pack(CLI::App& app, int& exit_code);

}  // namespace htga::cli
