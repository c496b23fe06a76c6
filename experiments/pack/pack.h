#pragma once
// `htga pack`: an ImageNet-like folder (inputs.h) into one packed file per split (format.h),
// DIR/train.pack and DIR/val.pack. Worker threads decode, resize and encode; one writer appends
// the results in input order, so the file is the same for any thread count. Each split is
// written through a journal (journal.h): a pack stopped by SIGINT/SIGTERM keeps what it did and
// the next run continues from there; a split whose complete pack already matches its inputs and
// options is left as it is.

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "experiments/pack/format.h"
#include "experiments/pack/inputs.h"
#include "experiments/pack/journal.h"

namespace htga::pack {

struct PackSettings {
  std::string root;              // ImageNet-like folder: train/<class>/..., val/...
  std::string out;               // DIR: DIR/train.pack, DIR/val.pack
  int size = 256;                // shorter side of every stored image, pixels
  int quality = 90;              // JPEG quality, 1..100 (not used when raw)
  bool raw = false;              // store uint8 HWC RGB instead of JPEG
  int threads = 1;               // decode/encode workers
  bool progress_bar = false;     // a bar redrawn in place (a terminal); else a line every progress_every_s
  double progress_every_s = 30;  // 0 = no progress lines
  /// Called by the writer after each image it records (split name, images of the split done):
  /// tests stop a pack halfway through with experiments::request_stop() from here.
  std::function<void(const std::string&, int64_t)> after_image;
};

struct SkippedImage {
  std::string path;
  SkipReason reason = SkipReason::kCorrupt;
  std::string detail;  // the decoder's message (empty for images skipped by an earlier run)
};

struct SplitReport {
  std::string name;         // "train", "val"
  std::string file;         // DIR/<name>.pack
  std::string layout;       // how its labels were found
  int64_t inputs = 0;       // image files found
  int64_t packed = 0;       // images in the pack
  int64_t resumed_at = 0;   // inputs done by an earlier, interrupted run
  int64_t ignored = 0;      // files without an image extension
  bool up_to_date = false;  // a complete pack of the same inputs was there already
  uint64_t bytes = 0;       // size of the pack
  double seconds = 0;
  std::vector<SkippedImage> skipped;
};

struct PackReport {
  std::vector<std::string> classes;
  std::vector<SplitReport> splits;
};

/// Checks the settings, the inputs and the output folder before writing anything (InputError),
/// then packs each split. Progress goes to `err`. Throws Interrupted when stopped (the journal
/// stays for the next run).
PackReport pack_dataset(const PackSettings& settings, std::ostream& err);

/// The fingerprint a split's pack and journal carry: the inputs (paths under ROOT, sizes, labels), the
/// classes and the options that change the bytes.
uint64_t inputs_fingerprint(const SplitInputs& split, const std::vector<std::string>& classes,
                            const PackSettings& settings);

}  // namespace htga::pack
