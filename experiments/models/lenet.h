#pragma once
// LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
// recognition"), with ReLU and max pooling as it is trained today: conv 5x5 (6, padding 2),
// pool 2, conv 5x5 (16), pool 2, Linear 120, Linear 84, Linear classes. On 1x28x28 inputs with
// 10 classes it has 61,706 parameters, as the paper's network on 32x32.

#include <torch/torch.h>

namespace htga::models {

class LeNet5Impl : public torch::nn::Module {
 public:
  /// Throws std::invalid_argument when height or width is below 12 (nothing left after the
  /// second convolution and pooling).
  LeNet5Impl(int64_t channels, int64_t height, int64_t width, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr}, fc3_{nullptr};
};
TORCH_MODULE(LeNet5);

}  // namespace htga::models
