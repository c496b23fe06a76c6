#include "experiments/models/resnet.h"

#include <stdexcept>
#include <string>

namespace htga::models {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

nn::Conv2d conv1x1(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

}  // namespace

void init_conv_bn(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, /*a=*/0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) nn::init::zeros_(conv->bias);
    } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

BasicBlockImpl::BasicBlockImpl(int64_t in_planes, int64_t planes, int64_t stride, bool projection)
    : conv1_(conv3x3(in_planes, planes, stride)),
      conv2_(conv3x3(planes, planes, 1)),
      bn1_(planes),
      bn2_(planes),
      stride_(stride) {
  register_module("conv1", conv1_);
  register_module("bn1", bn1_);
  register_module("conv2", conv2_);
  register_module("bn2", bn2_);
  if (stride != 1 || in_planes != planes) {
    if (projection) {
      projection_ = nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in_planes, planes, 1).stride(stride).bias(false)),
                                   nn::BatchNorm2d(planes));
      register_module("shortcut", projection_);
    } else {
      if ((planes - in_planes) % 2 != 0)
        throw std::invalid_argument("option A shortcut: channel increase must be even");
      pad_channels_ = (planes - in_planes) / 2;
    }
  }
}

torch::Tensor BasicBlockImpl::forward(torch::Tensor x) {
  auto out = torch::relu(bn1_->forward(conv1_->forward(x)));
  out = bn2_->forward(conv2_->forward(out));
  torch::Tensor shortcut = x;
  if (projection_) {
    shortcut = projection_->forward(x);
  } else if (stride_ != 1 || pad_channels_ > 0) {
    // Option A: x[:, :, ::stride, ::stride] with zero channels on both sides.
    shortcut = x.slice(2, 0, x.size(2), stride_).slice(3, 0, x.size(3), stride_);
    shortcut = torch::constant_pad_nd(shortcut, {0, 0, 0, 0, pad_channels_, pad_channels_}, 0);
  }
  return torch::relu(out + shortcut);
}

namespace {

/// Stem (3x3 conv, batch norm, ReLU), `stages` stages of `blocks` basic blocks (width doubling
/// and stride 2 at each new stage), global average pooling. Returns the body and its width.
std::pair<nn::Sequential, int64_t> resnet_body(int64_t in_channels, int64_t width, int64_t stages, int64_t blocks,
                                               bool projection) {
  nn::Sequential body(conv3x3(in_channels, width, 1), nn::BatchNorm2d(width),
                      nn::Functional([](torch::Tensor x) { return torch::relu(x); }));
  int64_t in = width;
  for (int64_t stage = 0; stage < stages; ++stage) {
    const int64_t planes = width << stage;
    for (int64_t b = 0; b < blocks; ++b) {
      body->push_back(BasicBlock(in, planes, b == 0 && stage > 0 ? 2 : 1, projection));
      in = planes;
    }
  }
  body->push_back(nn::AdaptiveAvgPool2d(1));
  return {body, in};
}

}  // namespace

CifarResNetImpl::CifarResNetImpl(int64_t depth, int64_t in_channels, int64_t num_classes) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw std::invalid_argument("CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got " + std::to_string(depth));
  int64_t width = 0;
  std::tie(body_, width) = resnet_body(in_channels, 16, 3, (depth - 2) / 6, /*projection=*/false);
  fc_ = nn::Linear(width, num_classes);
  register_module("body", body_);
  register_module("fc", fc_);
  init_conv_bn(*this);
}

torch::Tensor CifarResNetImpl::forward(torch::Tensor x) { return fc_->forward(body_->forward(x).flatten(1)); }

ResNet18Impl::ResNet18Impl(int64_t in_channels, int64_t num_classes) {
  int64_t width = 0;
  std::tie(body_, width) = resnet_body(in_channels, 64, 4, 2, /*projection=*/true);
  fc_ = nn::Linear(width, num_classes);
  register_module("body", body_);
  register_module("fc", fc_);
  init_conv_bn(*this);
}

torch::Tensor ResNet18Impl::forward(torch::Tensor x) { return fc_->forward(body_->forward(x).flatten(1)); }

BottleneckImpl::BottleneckImpl(int64_t in_planes, int64_t planes, int64_t stride)
    : conv1_(conv1x1(in_planes, planes, 1)),
      conv2_(conv3x3(planes, planes, stride)),
      conv3_(conv1x1(planes, planes * kExpansion, 1)),
      bn1_(planes),
      bn2_(planes),
      bn3_(planes * kExpansion) {
  register_module("conv1", conv1_);
  register_module("bn1", bn1_);
  register_module("conv2", conv2_);
  register_module("bn2", bn2_);
  register_module("conv3", conv3_);
  register_module("bn3", bn3_);
  if (stride != 1 || in_planes != planes * kExpansion) {
    projection_ = nn::Sequential(conv1x1(in_planes, planes * kExpansion, stride), nn::BatchNorm2d(planes * kExpansion));
    register_module("shortcut", projection_);
  }
}

torch::Tensor BottleneckImpl::forward(torch::Tensor x) {
  auto out = torch::relu(bn1_->forward(conv1_->forward(x)));
  out = torch::relu(bn2_->forward(conv2_->forward(out)));
  out = bn3_->forward(conv3_->forward(out));
  return torch::relu(out + (projection_ ? projection_->forward(x) : x));
}

ImageNetResNetImpl::ImageNetResNetImpl(const std::vector<int64_t>& blocks, bool bottleneck, int64_t in_channels,
                                       int64_t num_classes) {
  body_ = nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in_channels, 64, 7).stride(2).padding(3).bias(false)),
                         nn::BatchNorm2d(64), nn::Functional([](torch::Tensor x) { return torch::relu(x); }),
                         nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t in = 64;
  for (size_t stage = 0; stage < blocks.size(); ++stage) {
    const int64_t planes = int64_t{64} << stage;
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      const int64_t stride = b == 0 && stage > 0 ? 2 : 1;
      if (bottleneck) {
        body_->push_back(Bottleneck(in, planes, stride));
        in = planes * BottleneckImpl::kExpansion;
      } else {
        body_->push_back(BasicBlock(in, planes, stride, /*projection=*/true));
        in = planes;
      }
    }
  }
  body_->push_back(nn::AdaptiveAvgPool2d(1));
  fc_ = nn::Linear(in, num_classes);
  register_module("body", body_);
  register_module("fc", fc_);
  init_conv_bn(*this);
}

torch::Tensor ImageNetResNetImpl::forward(torch::Tensor x) { return fc_->forward(body_->forward(x).flatten(1)); }

}  // namespace htga::models
