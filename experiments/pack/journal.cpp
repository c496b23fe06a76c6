#include "experiments/pack/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace htga::pack {

namespace {

constexpr char kJournalMagic[8] = {'H', 'T', 'G', 'A', 'J', 'R', 'N', 'L'};
constexpr uint32_t kJournalVersion = 1;
constexpr uint64_t kJournalHeaderBytes = 32;
constexpr uint64_t kRecordBytes = 32;

[[noreturn]] void fail(const std::string& what, const std::string& name) {
  throw std::system_error(errno, std::generic_category(), name + ": " + what);
}

uint64_t file_size(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool read_at(int fd, void* data, size_t n, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t got = pread(fd, p, n, static_cast<off_t>(offset));
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return true;
}

void encode_record(const JournalRecord& r, uint8_t* out) {
  encode_entry(r.entry, out);
  put_u32(out + 24, static_cast<uint32_t>(r.status));
  put_u32(out + 28, r.crc);
}

JournalRecord decode_record(const uint8_t* in) {
  JournalRecord r;
  r.entry = decode_entry(in);
  r.status = static_cast<SkipReason>(get_u32(in + 24));
  r.crc = get_u32(in + 28);
  return r;
}

}  // namespace

const char* skip_reason_text(SkipReason reason) {
  switch (reason) {
    case SkipReason::kCorrupt:
      return "corrupt image";
    case SkipReason::kUnreadable:
      return "unreadable file";
    case SkipReason::kEmpty:
      return "zero size";
    case SkipReason::kNone:
      break;
  }
  return "packed";
}

PartFile::PartFile(std::string file, Header header)
    : file_(std::move(file)), part_(file_ + ".part"), journal_(file_ + ".journal"), header_(std::move(header)) {
  if (!resume()) start_fresh();
}

PartFile::~PartFile() {
  if (part_fd_ >= 0) ::close(part_fd_);
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

void PartFile::write_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& name) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t put = pwrite(fd, p, n, static_cast<off_t>(offset));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) fail("cannot write", name);
    p += put;
    n -= static_cast<size_t>(put);
    offset += static_cast<uint64_t>(put);
  }
}

void PartFile::start_fresh() {
  if (part_fd_ >= 0) ::close(part_fd_);
  if (journal_fd_ >= 0) ::close(journal_fd_);
  records_.clear();
  part_fd_ = ::open(part_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (part_fd_ < 0) fail("cannot create", part_);
  journal_fd_ = ::open(journal_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (journal_fd_ < 0) fail("cannot create", journal_);
  data_end_ = header_bytes(header_.classes);
  const std::string room(data_end_, '\0');  // the header is written by finish()
  write_all(part_fd_, room.data(), room.size(), 0, part_);
  uint8_t head[kJournalHeaderBytes] = {};
  std::memcpy(head, kJournalMagic, 8);
  put_u32(head + 8, kJournalVersion);
  put_u64(head + 16, header_.fingerprint);
  put_u64(head + 24, data_end_);
  write_all(journal_fd_, head, sizeof head, 0, journal_);
}

bool PartFile::resume() {
  journal_fd_ = ::open(journal_.c_str(), O_RDWR | O_CLOEXEC);
  part_fd_ = ::open(part_.c_str(), O_RDWR | O_CLOEXEC);
  if (journal_fd_ < 0 || part_fd_ < 0) return false;
  const uint64_t journal_size = file_size(journal_fd_), part_size = file_size(part_fd_);
  uint8_t head[kJournalHeaderBytes];
  if (!read_at(journal_fd_, head, sizeof head, 0) || std::memcmp(head, kJournalMagic, 8) != 0 ||
      get_u32(head + 8) != kJournalVersion || get_u64(head + 16) != header_.fingerprint ||
      get_u64(head + 24) != header_bytes(header_.classes))
    return false;
  std::vector<uint8_t> raw((journal_size - kJournalHeaderBytes) / kRecordBytes * kRecordBytes);
  if (!read_at(journal_fd_, raw.data(), raw.size(), kJournalHeaderBytes)) return false;
  data_end_ = get_u64(head + 24);
  std::vector<uint8_t> bytes;
  for (size_t at = 0; at < raw.size(); at += kRecordBytes) {
    const JournalRecord r = decode_record(&raw[at]);
    if (r.status == SkipReason::kNone) {  // packed: in place, whole, and the bytes written
      if (r.entry.offset != data_end_ || r.entry.bytes == 0 || data_end_ + r.entry.bytes > part_size) break;
      bytes.resize(r.entry.bytes);
      if (!read_at(part_fd_, bytes.data(), bytes.size(), data_end_) || crc32_of(bytes.data(), bytes.size()) != r.crc)
        break;
      data_end_ += r.entry.bytes;
    } else if (static_cast<uint32_t>(r.status) > 3 || r.entry.bytes != 0) {
      break;
    }
    records_.push_back(r);
  }
  // Whatever follows the last good record is dropped.
  if (ftruncate(part_fd_, static_cast<off_t>(data_end_)) != 0) fail("cannot truncate", part_);
  if (ftruncate(journal_fd_, static_cast<off_t>(kJournalHeaderBytes + records_.size() * kRecordBytes)) != 0)
    fail("cannot truncate", journal_);
  return true;
}

void PartFile::append(const std::string& bytes, int32_t label, int height, int width, SkipReason status) {
  JournalRecord r;
  r.status = status;
  r.entry.label = label;
  if (status == SkipReason::kNone) {
    r.entry = {data_end_, static_cast<uint32_t>(bytes.size()), label, static_cast<uint32_t>(height),
               static_cast<uint32_t>(width)};
    r.crc = crc32_of(bytes.data(), bytes.size());
    write_all(part_fd_, bytes.data(), bytes.size(), data_end_, part_);
    data_end_ += bytes.size();
  }
  uint8_t rec[kRecordBytes];
  encode_record(r, rec);
  write_all(journal_fd_, rec, sizeof rec, kJournalHeaderBytes + records_.size() * kRecordBytes, journal_);
  records_.push_back(r);
}

uint64_t PartFile::finish() {
  std::vector<uint8_t> index;
  for (const JournalRecord& r : records_) {
    if (r.status != SkipReason::kNone) continue;
    index.resize(index.size() + kIndexEntryBytes);
    encode_entry(r.entry, &index[index.size() - kIndexEntryBytes]);
  }
  header_.index_offset = (data_end_ + 7) / 8 * 8;
  header_.count = index.size() / kIndexEntryBytes;
  header_.index_crc = crc32_of(index.data(), index.size());
  header_.file_size = header_.index_offset + index.size();
  const std::string pad(header_.index_offset - data_end_, '\0');
  write_all(part_fd_, pad.data(), pad.size(), data_end_, part_);
  write_all(part_fd_, index.data(), index.size(), header_.index_offset, part_);
  const std::string head = encode_header(header_);
  write_all(part_fd_, head.data(), head.size(), 0, part_);
  if (fsync(part_fd_) != 0) fail("cannot sync", part_);
  ::close(part_fd_);
  part_fd_ = -1;
  std::filesystem::rename(part_, file_);
  ::close(journal_fd_);
  journal_fd_ = -1;
  std::filesystem::remove(journal_);
  return header_.file_size;
}

bool complete_pack_matches(const std::string& file, uint64_t fingerprint, uint64_t* count) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint8_t head[kFixedHeaderBytes];
  const bool read = read_at(fd, head, sizeof head, 0);
  const uint64_t size = file_size(fd);
  ::close(fd);
  if (!read || std::memcmp(head, kMagic, 8) != 0 || get_u32(head + 8) != kVersion ||
      get_u64(head + 48) != fingerprint || get_u64(head + 32) != size)
    return false;
  if (count) *count = get_u64(head + 16);
  return true;
}

}  // namespace htga::pack
