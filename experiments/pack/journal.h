#pragma once
// The resumable half-written pack of one split: `<file>.part` holds the header's room and the
// image bytes so far, `<file>.journal` one record per input image done (packed or skipped), in
// input order. An interrupted pack leaves both; the next run checks the journal against the part
// file (each packed image's CRC-32 and place) and continues after the last good record. When all
// inputs are done, finish() appends the index, writes the header and renames the part file to
// `<file>`, then removes the journal.
//
// Journal layout (little-endian): "HTGAJRNL", u32 version, u32 0, u64 inputs fingerprint,
// u64 header bytes; then 32-byte records: u64 offset, u32 bytes, i32 label, u32 height,
// u32 width, u32 status (SkipReason), u32 CRC-32 of the image bytes.
// The writes are not fsync'ed one by one: a stop by a signal or a crash of htga loses nothing;
// a power cut may lose the last records, which the check on resume then drops.

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/pack/format.h"

namespace htga::pack {

/// Why an input image is not in the pack (kNone: it is).
enum class SkipReason : uint32_t { kNone = 0, kCorrupt = 1, kUnreadable = 2, kEmpty = 3 };
const char* skip_reason_text(SkipReason reason);  // "corrupt image", "unreadable file", "zero size"

struct JournalRecord {
  IndexEntry entry;                       // offset and bytes are 0 for a skipped image
  SkipReason status = SkipReason::kNone;  // kNone: packed
  uint32_t crc = 0;
};

class PartFile {
 public:
  /// Opens `<file>.part` and `<file>.journal` for the pack of `header` (its fingerprint and
  /// classes), resuming them when they belong to the same inputs and options, else starting anew.
  PartFile(std::string file, Header header);
  ~PartFile();
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;

  /// Records of the inputs already done (resumed from the journal), in input order.
  const std::vector<JournalRecord>& records() const { return records_; }
  /// Appends the next input's result: its bytes (empty when skipped) then its record.
  void append(const std::string& bytes, int32_t label, int height, int width, SkipReason status);
  /// Writes the index and the header, renames the part file into place, removes the journal.
  /// Returns the size of the pack.
  uint64_t finish();

 private:
  void start_fresh();
  bool resume();
  void write_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& name);

  std::string file_, part_, journal_;
  Header header_;
  int part_fd_ = -1, journal_fd_ = -1;
  uint64_t data_end_ = 0;  // where the next image's bytes go
  std::vector<JournalRecord> records_;
};

/// True when `file` is a complete pack whose header carries `fingerprint` (read without mapping);
/// then `*count` is its image count.
bool complete_pack_matches(const std::string& file, uint64_t fingerprint, uint64_t* count = nullptr);

}  // namespace htga::pack
