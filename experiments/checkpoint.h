#pragma once
// Checkpoints: everything that makes a resumed cell continue exactly where it stopped (model
// parameters and buffers, optimizer and HTGA controller state, the noise EMA, the random
// generators), in one file written atomically and verified when read.
//
// File format (version 1): the 8 bytes "HTGACKP1", the payload length (u64, little endian),
// the CRC-32 of the payload (u32), then the payload: a LibTorch serialize archive. A file
// without the header is read as a bare archive (checkpoints of htga before the header).

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace htga::optimizers {
class Optimizer;
class HtgaController;
}  // namespace htga::optimizers

namespace htga::experiments {

class AlphaMonitor;

/// A checkpoint that cannot be used: unreadable, truncated, corrupt (CRC), of another epoch,
/// or missing a tensor. The message names the file and the problem.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The objects a checkpoint saves and restores (not owned).
struct TrainState {
  torch::nn::Module* module = nullptr;
  optimizers::Optimizer* optimizer = nullptr;
  optimizers::HtgaController* controller = nullptr;  // null without htga
  AlphaMonitor* monitor = nullptr;
  std::vector<std::pair<std::string, at::Generator*>> generators;  // by name
  /// Where in an epoch a checkpoint was taken: the epoch's batch order and the first row of the
  /// next batch (order undefined: at the end of an epoch). Saved when defined, and restored
  /// (undefined when the file has none); null: not kept.
  struct Position {
    torch::Tensor order;
    int64_t next = 0;
  };
  Position* position = nullptr;
};

/// Writes `s` after `epoch` (0-based) at `step` steps to `file`: a temporary file beside it,
/// flushed to disk, then renamed over `file` (a reader sees the old file or the whole new one).
/// Creates the folder. Throws std::runtime_error naming the file when it cannot be written.
void save_checkpoint(const std::string& file, const TrainState& s, int64_t epoch, int64_t step);

/// Restores `s` from `file`, which must hold epoch `epoch` and step `step`. Everything is read
/// and checked (CRC, every tensor present with the shape of its target) before anything in `s`
/// changes. Throws CheckpointError naming the file and the problem.
void load_checkpoint(const std::string& file, const TrainState& s, const torch::Device& device, int64_t epoch,
                     int64_t step);

/// Moves an unusable checkpoint aside (FILE.bad, replacing an older one) so that it is kept for
/// inspection and not read again; returns the new name ("" when it could not be moved).
std::string set_aside(const std::string& file);

}  // namespace htga::experiments
