#include "experiments/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "experiments/alpha_monitor.h"
#include "experiments/pack/format.h"
#include "optimizers/htga.h"
#include "optimizers/sgd.h"

namespace htga::experiments {

namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'H', 'T', 'G', 'A', 'C', 'K', 'P', '1'};
constexpr size_t kHeader = sizeof kMagic + 8 + 4;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

void write_list(torch::serialize::OutputArchive& ar, const std::string& prefix, const std::vector<torch::Tensor>& v) {
  ar.write(prefix + ".n", torch::tensor(static_cast<int64_t>(v.size())));
  for (size_t i = 0; i < v.size(); ++i) ar.write(prefix + "." + std::to_string(i), v[i]);
}

/// Writes all of `data` to `path` and flushes it to disk; throws naming the file.
void write_durably(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot write checkpoint: " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(path + ": cannot write checkpoint: " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!synced) throw std::runtime_error(path + ": cannot write checkpoint: " + std::strerror(err));
}

/// The payload of a checkpoint file, checked against its header.
std::string read_payload(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw CheckpointError(file + ": cannot read checkpoint: " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return bytes;  // a bare archive (older htga): the archive reader checks what it can
  if (bytes.size() < kHeader)
    throw CheckpointError(
        fmt::format("{}: checkpoint truncated ({} bytes, header alone is {})", file, bytes.size(), kHeader));
  const uint64_t length = get_le(bytes.data() + sizeof kMagic, 8);
  const auto crc = static_cast<uint32_t>(get_le(bytes.data() + sizeof kMagic + 8, 4));
  if (bytes.size() - kHeader != length)
    throw CheckpointError(fmt::format("{}: checkpoint truncated or padded ({} payload bytes, header says {})", file,
                                      bytes.size() - kHeader, length));
  if (pack::crc32_of(bytes.data() + kHeader, length) != crc)
    throw CheckpointError(file + ": checkpoint corrupt (CRC mismatch)");
  return bytes.substr(kHeader);
}

/// Every tensor of an archive, by name, read before anything is applied.
class Staged {
 public:
  Staged(const std::string& file, torch::serialize::InputArchive& ar) : file_(file), ar_(ar) {}

  torch::Tensor get(const std::string& key) {
    torch::Tensor t;
    if (!ar_.try_read(key, t) || !t.defined()) throw CheckpointError(file_ + ": checkpoint lacks \"" + key + "\"");
    return t;
  }
  torch::Tensor like(const std::string& key, const torch::Tensor& target) {
    auto t = get(key);
    if (t.sizes() != target.sizes())
      throw CheckpointError(fmt::format("{}: checkpoint's \"{}\" has shape {}, the model's {}", file_, key,
                                        fmt::join(t.sizes(), "x"), fmt::join(target.sizes(), "x")));
    return t;
  }
  std::vector<torch::Tensor> list(const std::string& prefix) {
    const auto n = get(prefix + ".n");
    if (n.numel() != 1) throw CheckpointError(file_ + ": checkpoint's \"" + prefix + ".n\" is not a count");
    const int64_t count = n.item<int64_t>();
    if (count < 0 || count > (int64_t{1} << 24))
      throw CheckpointError(fmt::format("{}: checkpoint's \"{}.n\" is {}", file_, prefix, count));
    std::vector<torch::Tensor> v;
    for (int64_t i = 0; i < count; ++i) v.push_back(get(prefix + "." + std::to_string(i)));
    return v;
  }
  bool has(const std::string& key) {
    torch::Tensor t;
    return ar_.try_read(key, t);
  }

 private:
  const std::string& file_;
  torch::serialize::InputArchive& ar_;
};

}  // namespace

void save_checkpoint(const std::string& file, const TrainState& s, int64_t epoch, int64_t step) {
  torch::serialize::OutputArchive ar;
  for (const auto& p : s.module->named_parameters()) ar.write("model." + p.key(), p.value().detach());
  for (const auto& b : s.module->named_buffers()) ar.write("buffer." + b.key(), b.value());
  write_list(ar, "opt", s.optimizer->state());
  if (s.controller) write_list(ar, "ctrl", s.controller->state());
  ar.write("ema", s.monitor->state());
  for (const auto& [name, gen] : s.generators) {
    std::lock_guard<std::mutex> lock(gen->mutex());
    ar.write("gen." + name, gen->get_state());
  }
  ar.write("meta", torch::tensor({epoch, step}, torch::kInt64));
  if (s.position && s.position->order.defined()) {  // a checkpoint in the middle of an epoch
    ar.write("pos.order", s.position->order.cpu());
    ar.write("pos.next", torch::tensor(s.position->next, torch::kInt64));
  }

  std::string payload;
  ar.save_to([&payload](const void* data, size_t size) {
    payload.append(static_cast<const char*>(data), size);
    return size;
  });
  std::string bytes(kMagic, sizeof kMagic);
  put_le(bytes, payload.size(), 8);
  put_le(bytes, pack::crc32_of(payload.data(), payload.size()), 4);
  bytes += payload;

  std::error_code ec;
  fs::create_directories(fs::path(file).parent_path(), ec);
  if (ec) throw std::runtime_error(file + ": cannot create the checkpoint folder: " + ec.message());
  const std::string tmp = file + ".tmp";
  write_durably(tmp, bytes);
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error(file + ": cannot write checkpoint: " + ec.message());
  }
}

void load_checkpoint(const std::string& file, const TrainState& s, const torch::Device& device, int64_t epoch,
                     int64_t step) {
  const std::string payload = read_payload(file);
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(payload.data(), payload.size(), device);
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    throw CheckpointError(file + ": not a readable checkpoint (" + msg.substr(0, msg.find('\n')) + ")");
  }
  Staged in(file, ar);
  try {
    const auto meta = in.get("meta");
    if (meta.numel() != 2) throw CheckpointError(file + ": checkpoint's \"meta\" is malformed");
    if (meta[0].item<int64_t>() != epoch || meta[1].item<int64_t>() != step)
      throw CheckpointError(fmt::format("{}: checkpoint is of epoch {} step {}, the database expects epoch {} step {}",
                                        file, meta[0].item<int64_t>(), meta[1].item<int64_t>(), epoch, step));
    std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (target, value)
    for (const auto& p : s.module->named_parameters())
      copies.emplace_back(p.value(), in.like("model." + p.key(), p.value()));
    for (const auto& b : s.module->named_buffers())
      copies.emplace_back(b.value(), in.like("buffer." + b.key(), b.value()));
    const auto opt = in.list("opt");
    const auto ctrl = s.controller ? in.list("ctrl") : std::vector<torch::Tensor>{};
    const auto ema = in.get("ema");
    std::vector<std::pair<at::Generator*, torch::Tensor>> gens;
    for (const auto& [name, gen] : s.generators) {
      if (name == "cuda" && !in.has("gen." + name)) continue;  // a checkpoint from before it was saved
      gens.emplace_back(gen, in.get("gen." + name).cpu());
    }
    TrainState::Position position;
    if (in.has("pos.order")) {
      position.order = in.get("pos.order").cpu();
      position.next = in.get("pos.next").item<int64_t>();
      if (position.order.dim() != 1 || position.next < 0 || position.next > position.order.numel())
        throw CheckpointError(file + ": checkpoint's epoch position is malformed");
    }
    // Everything is read: apply.
    torch::NoGradGuard no_grad;
    for (auto& [target, value] : copies) target.copy_(value);
    s.optimizer->load_state(opt);
    if (s.controller) s.controller->load_state(ctrl);
    s.monitor->load_state(ema);
    if (s.position) *s.position = position;
    for (auto& [gen, state] : gens) {
      std::lock_guard<std::mutex> lock(gen->mutex());
      gen->set_state(state);
    }
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    throw CheckpointError(file + ": checkpoint does not fit this cell (" + msg.substr(0, msg.find('\n')) + ")");
  }
}

std::string set_aside(const std::string& file) {
  std::error_code ec;
  const std::string bad = file + ".bad";
  fs::rename(file, bad, ec);
  return ec ? std::string() : bad;
}

}  // namespace htga::experiments
