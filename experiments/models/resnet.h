#pragma once
// Residual networks for 32x32 inputs (He, Zhang, Ren, Sun 2016, "Deep Residual Learning for
// Image Recognition", Sec. 4.2), the CIFAR variant of ResNet-18, and torchvision's ImageNet
// ResNet-18 and ResNet-50.

#include <torch/torch.h>

#include <vector>

namespace htga::models {

/// The basic block: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, -> ReLU.
/// When the shape changes the shortcut is option A of the paper (subsample by 2, pad the new
/// channels with zeros: no parameters) or option B (1x1 conv with stride, BN).
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride, bool projection);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Sequential projection_{nullptr};  // null: identity or option A
  int64_t pad_channels_ = 0;                   // option A: zero channels added on each side
  int64_t stride_ = 1;
};
TORCH_MODULE(BasicBlock);

/// ResNet-(6n+2) for CIFAR: conv3x3(16) -> BN -> ReLU, three stages of n basic blocks with 16,
/// 32 and 64 channels (the last two start with stride 2), global average pooling, Linear.
/// Option A shortcuts, as in the paper: ResNet-20 (n = 3) has 0.27M parameters, ResNet-56
/// (n = 9) 0.85M. Throws std::invalid_argument when depth is not 6n+2.
class CifarResNetImpl : public torch::nn::Module {
 public:
  CifarResNetImpl(int64_t depth, int64_t in_channels, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential body_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(CifarResNet);

/// ResNet-18 adapted to 32x32 inputs (the common CIFAR variant): conv3x3(64) stem without max
/// pooling, four stages of two basic blocks with 64, 128, 256, 512 channels (option B
/// shortcuts), global average pooling, Linear. 11.17M parameters for 10 classes.
class ResNet18Impl : public torch::nn::Module {
 public:
  ResNet18Impl(int64_t in_channels, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential body_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet18);

/// The bottleneck block of ImageNet ResNet-50 (torchvision's v1.5: the stride sits on the 3x3
/// conv): conv1x1(planes) -> BN -> ReLU -> conv3x3(planes, stride) -> BN -> ReLU ->
/// conv1x1(4 planes) -> BN, plus the shortcut (identity, or conv1x1(stride) -> BN when the shape
/// changes), -> ReLU.
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in_planes, int64_t planes, int64_t stride);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Sequential projection_{nullptr};  // null: identity
};
TORCH_MODULE(Bottleneck);

/// ResNets for ImageNet-sized inputs, torchvision's layout (He et al. 2016, Table 1;
/// torchvision/models/resnet.py): conv7x7(64, stride 2) -> BN -> ReLU -> max pool 3x3 stride 2,
/// four stages of `blocks[s]` blocks with 64, 128, 256, 512 planes (stages 2-4 start with stride
/// 2; projection shortcuts), global average pooling, Linear. Basic blocks with {2, 2, 2, 2} are
/// ResNet-18 (11,689,512 parameters for 1000 classes); bottleneck blocks with {3, 4, 6, 3} are
/// ResNet-50 v1.5 (25,557,032). Any input of at least 32x32 pixels.
class ImageNetResNetImpl : public torch::nn::Module {
 public:
  ImageNetResNetImpl(const std::vector<int64_t>& blocks, bool bottleneck, int64_t in_channels, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential body_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ImageNetResNet);

/// He (kaiming normal, fan_out, ReLU gain) initialisation of every Conv2d in `module`,
/// BatchNorm weights 1 and biases 0, as torchvision's ResNets do.
void init_conv_bn(torch::nn::Module& module);

}  // namespace htga::models
