#pragma once

#include <torch/torch.h>

namespace htga::models {

/// VGG-11 with batch norm (Simonyan and Zisserman 2015, configuration A; batch norm after each
/// conv as in torchvision's vgg11_bn), the CIFAR variant: conv3x3 -> BN -> ReLU with
/// 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M (M = 2x2 max pooling), then one
/// Linear(512, classes). A pooling is skipped once the feature map is 1x1 and the map is
/// averaged to 1x1 before the Linear, so inputs of any size work; on 32x32 inputs this is the
/// usual CIFAR VGG-11 (9.23M parameters for 10 classes).
class Vgg11Impl : public torch::nn::Module {
 public:
  Vgg11Impl(int64_t in_channels, int64_t height, int64_t width, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(Vgg11);

}  // namespace htga::models
