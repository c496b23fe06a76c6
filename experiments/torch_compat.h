#pragma once
// The one place where LibTorch versions and CUDA differ for htga: Debian's LibTorch 1.13 (CPU)
// and the 2.x CUDA wheel on GPU machines. Mixed precision (autocast) changed its API in 2.4;
// streams and CUDA graphs need CUDA headers, which a CPU build does not have. Built without CUDA
// support (HTGA_WITH_CUDA undefined in torch_compat.cpp), the stream and graph pieces do nothing
// and say so, and everything else works the same.

#include <torch/torch.h>
#include <torch/version.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#define HTGA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace htga::compat {

/// Whether this binary was built with CUDA streams and graphs (a CUDA LibTorch with the CUDA
/// runtime headers found at configure time).
bool cuda_support_built();

/// Mixed precision while it lives, for operations on `device`'s kind (CUDA or CPU): matrix
/// products and convolutions in bfloat16, softmax, norms and losses in float32 (torch's autocast
/// lists). Parameters and their gradients stay float32. Not enabled: does nothing.
class Autocast {
 public:
  Autocast(const torch::Device& device, bool enabled);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool enabled_;
  c10::DeviceType type_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

/// The calling thread works on a CUDA stream of its own while this lives, so that cells trained
/// side by side on one GPU (--jobs) overlap instead of queueing on the default stream. The
/// previous stream is restored at the end. CPU devices, or no CUDA support built: nothing.
class ThreadStream {
 public:
  explicit ThreadStream(const torch::Device& device);
  ~ThreadStream();
  ThreadStream(const ThreadStream&) = delete;
  ThreadStream& operator=(const ThreadStream&) = delete;
  /// Whether a stream of its own is in use.
  bool active() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Waits until all work queued on `device` has finished (nothing to do on the CPU).
void synchronize(const torch::Device& device);

/// A CUDA graph: the kernels that `fn` launches, captured once and then replayed with a single
/// launch, which removes the per-operation host overhead that dominates small kernels.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// Captures `fn` for `device` (CUDA only). Nothing is computed while capturing: replay() gives
  /// the first result. The tensors `fn` reads keep their storage across replays (inputs are read
  /// in place); `fn`'s returned tensors are overwritten by each replay. Returns false with the
  /// reason in `why` where graphs are not available (CPU, no CUDA support built) or capture
  /// failed (an operation that synchronises with the host, say); the graph is then unusable.
  bool capture(const torch::Device& device, const std::function<std::vector<torch::Tensor>()>& fn, std::string* why);
  /// Runs the captured kernels on the current stream.
  void replay();
  bool ready() const;
  const std::vector<torch::Tensor>& outputs() const { return outputs_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<torch::Tensor> outputs_;
};

}  // namespace htga::compat
