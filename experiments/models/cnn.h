#pragma once

#include <torch/torch.h>

#include <vector>

namespace htga::models {

struct CnnOptions {
  std::vector<int64_t> channels{32, 64};  // output channels of each conv stage
  std::vector<int64_t> hidden{128};       // widths of the fully connected layers before the logits
  int64_t kernel = 5;                     // side of the square conv kernels (odd: "same" padding)
};

/// A small LeNet-style network: per stage Conv(kernel, same padding) -> ReLU -> MaxPool(2),
/// then Linear -> ReLU ... -> Linear (logits). Inputs [B, C, H, W] with H and W at least
/// 2^stages. Throws std::invalid_argument for an input too small or an even kernel.
class CnnImpl : public torch::nn::Module {
 public:
  CnnImpl(int64_t in_channels, int64_t height, int64_t width, int64_t num_classes, const CnnOptions& options = {});
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential features_, classifier_;
};
TORCH_MODULE(Cnn);

}  // namespace htga::models
