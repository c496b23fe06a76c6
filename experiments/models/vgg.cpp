#include "experiments/models/vgg.h"

#include "experiments/models/resnet.h"

namespace htga::models {

namespace nn = torch::nn;

Vgg11Impl::Vgg11Impl(int64_t in_channels, int64_t height, int64_t width, int64_t num_classes) {
  constexpr int64_t kPool = 0;
  const int64_t config[] = {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool};
  features_ = nn::Sequential();
  int64_t c = in_channels;
  for (int64_t v : config) {
    if (v == kPool) {
      if (height > 1 || width > 1) {
        features_->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).ceil_mode(true)));
        height = (height + 1) / 2;
        width = (width + 1) / 2;
      }
      continue;
    }
    features_->push_back(nn::Conv2d(nn::Conv2dOptions(c, v, 3).padding(1)));
    features_->push_back(nn::BatchNorm2d(v));
    features_->push_back(nn::ReLU(nn::ReLUOptions(/*inplace=*/true)));
    c = v;
  }
  features_->push_back(nn::AdaptiveAvgPool2d(1));
  fc_ = nn::Linear(c, num_classes);
  register_module("features", features_);
  register_module("fc", fc_);
  init_conv_bn(*this);
}

torch::Tensor Vgg11Impl::forward(torch::Tensor x) { return fc_->forward(features_->forward(x).flatten(1)); }

}  // namespace htga::models
