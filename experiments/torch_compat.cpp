#include "experiments/torch_compat.h"

#include <ATen/autocast_mode.h>

#ifdef HTGA_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <optional>

namespace htga::compat {

bool cuda_support_built() {
#ifdef HTGA_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// ---------------------------------------------------------------------------------------------
// Autocast: LibTorch 2.4 replaced the per-device functions (set_enabled for CUDA,
// set_cpu_enabled, ...) by ones that take the device type.

Autocast::Autocast(const torch::Device& device, bool enabled)
    : enabled_(enabled && (device.is_cuda() || device.is_cpu())), type_(device.type()) {
  if (!enabled_) return;
#if HTGA_TORCH_AT_LEAST(2, 4)
  prev_enabled_ = at::autocast::is_autocast_enabled(type_);
  prev_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::set_autocast_enabled(type_, true);
#else
  if (type_ == c10::DeviceType::CUDA) {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

Autocast::~Autocast() {
  if (!enabled_) return;
  // The cache holds the bfloat16 copies of the weights made inside the region; they are stale
  // once the optimizer steps.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if HTGA_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(type_, prev_enabled_);
  at::autocast::set_autocast_dtype(type_, prev_dtype_);
#else
  if (type_ == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// Streams

#ifdef HTGA_WITH_CUDA
namespace {
c10::DeviceIndex index_of(const torch::Device& device) { return device.has_index() ? device.index() : 0; }

/// Makes `stream` the current one of its device until destroyed.
class StreamSwitch {
 public:
  explicit StreamSwitch(const c10::cuda::CUDAStream& stream)
      : previous_(c10::cuda::getCurrentCUDAStream(stream.device_index())) {
    c10::cuda::setCurrentCUDAStream(stream);
  }
  ~StreamSwitch() { c10::cuda::setCurrentCUDAStream(previous_); }
  StreamSwitch(const StreamSwitch&) = delete;
  StreamSwitch& operator=(const StreamSwitch&) = delete;

 private:
  c10::cuda::CUDAStream previous_;
};

/// Work queued on `later` from now on starts after what is queued on `first` so far.
void order_after(const c10::cuda::CUDAStream& first, const c10::cuda::CUDAStream& later) {
  c10::Event event(c10::DeviceType::CUDA);
  event.record(first);
  event.block(later);
}
}  // namespace

struct ThreadStream::Impl {
  std::optional<StreamSwitch> use;
};

ThreadStream::ThreadStream(const torch::Device& device) : impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) return;
  auto stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index_of(device));
  // Whatever the thread queued before (the datasets' upload) comes first.
  order_after(c10::cuda::getCurrentCUDAStream(index_of(device)), stream);
  impl_->use.emplace(stream);
}

ThreadStream::~ThreadStream() = default;

bool ThreadStream::active() const { return impl_->use.has_value(); }

#else

struct ThreadStream::Impl {};
ThreadStream::ThreadStream(const torch::Device&) : impl_(std::make_unique<Impl>()) {}
ThreadStream::~ThreadStream() = default;
bool ThreadStream::active() const { return false; }

#endif

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

// ---------------------------------------------------------------------------------------------
// Graphs

#ifdef HTGA_WITH_CUDA

struct Graph::Impl {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  c10::DeviceIndex device = 0;
};

Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;

bool Graph::capture(const torch::Device& device, const std::function<std::vector<torch::Tensor>()>& fn,
                    std::string* why) {
  impl_->graph.reset();
  outputs_.clear();
  if (!device.is_cuda()) {
    if (why) *why = "CUDA graphs need a CUDA device";
    return false;
  }
  impl_->device = index_of(device);
  const auto current = c10::cuda::getCurrentCUDAStream(impl_->device);
  // CUDA captures on a stream other than the default one; the capture reads what `current`
  // produced, so it is ordered after it.
  const auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, impl_->device);
  order_after(current, side);
  try {
    StreamSwitch on_side(side);
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    // Thread-local capture mode: cells on other threads (--jobs) may allocate meanwhile.
    graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    std::vector<torch::Tensor> outs;
    try {
      outs = fn();
    } catch (...) {
      try {
        graph->capture_end();  // leaves the stream out of capture mode
      } catch (...) {
      }
      throw;
    }
    graph->capture_end();
    impl_->graph = std::move(graph);
    outputs_ = std::move(outs);
  } catch (const std::exception& e) {
    impl_->graph.reset();
    outputs_.clear();
    if (why) {
      *why = e.what();
      *why = why->substr(0, why->find('\n'));  // c10 errors append a backtrace
    }
    return false;
  }
  order_after(side, current);
  return true;
}

void Graph::replay() {
  TORCH_CHECK(impl_->graph, "Graph::replay before a successful capture");
  impl_->graph->replay();
}

bool Graph::ready() const { return impl_->graph != nullptr; }

#else

struct Graph::Impl {};
Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;

bool Graph::capture(const torch::Device& device, const std::function<std::vector<torch::Tensor>()>&, std::string* why) {
  if (why)
    *why = device.is_cuda() ? "htga was built without CUDA graph support (no CUDA runtime headers at configure time)"
                            : "CUDA graphs need a CUDA device";
  return false;
}

void Graph::replay() { TORCH_CHECK(false, "Graph::replay: no CUDA graph support in this build"); }

bool Graph::ready() const { return false; }

#endif

}  // namespace htga::compat
