#pragma once
// Residual networks for 32x32 inputs (He, Zhang, Ren, Sun 2016, "Deep Residual Learning for
// Image Recognition", Sec. 4.2), and the CIFAR variant of ResNet-18.

#include <torch/torch.h>

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

/// He (kaiming normal, fan_out, ReLU gain) initialisation of every Conv2d in `module`,
/// BatchNorm weights 1 and biases 0, as torchvision's ResNets do.
void init_conv_bn(torch::nn::Module& module);

}  // namespace htga::models
