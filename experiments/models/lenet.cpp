#include "experiments/models/lenet.h"

#include <stdexcept>
#include <string>

namespace htga::models {

namespace F = torch::nn::functional;

LeNet5Impl::LeNet5Impl(int64_t channels, int64_t height, int64_t width, int64_t num_classes) {
  // conv1 keeps the size (padding 2), pooling halves it, conv2 takes 4, pooling halves again.
  const int64_t h = (height / 2 - 4) / 2, w = (width / 2 - 4) / 2;
  if (h < 1 || w < 1)
    throw std::invalid_argument("lenet5: inputs of at least 12x12 needed, got " + std::to_string(height) + "x" +
                                std::to_string(width));
  conv1_ = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 6, 5).padding(2)));
  conv2_ = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 16, 5)));
  fc1_ = register_module("fc1", torch::nn::Linear(16 * h * w, 120));
  fc2_ = register_module("fc2", torch::nn::Linear(120, 84));
  fc3_ = register_module("fc3", torch::nn::Linear(84, num_classes));
}

torch::Tensor LeNet5Impl::forward(torch::Tensor x) {
  x = F::max_pool2d(torch::relu(conv1_->forward(x)), F::MaxPool2dFuncOptions(2));
  x = F::max_pool2d(torch::relu(conv2_->forward(x)), F::MaxPool2dFuncOptions(2));
  x = torch::relu(fc1_->forward(x.flatten(1)));
  x = torch::relu(fc2_->forward(x));
  return fc3_->forward(x);
}

}  // namespace htga::models
