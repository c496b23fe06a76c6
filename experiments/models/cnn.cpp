#include "experiments/models/cnn.h"

#include <stdexcept>
#include <string>

namespace htga::models {

namespace nn = torch::nn;

CnnImpl::CnnImpl(int64_t in_channels, int64_t height, int64_t width, int64_t num_classes, const CnnOptions& o) {
  if (o.kernel < 1 || o.kernel % 2 == 0)
    throw std::invalid_argument("cnn: kernel must be odd, got " + std::to_string(o.kernel));
  const auto stages = static_cast<int64_t>(o.channels.size());
  if ((height >> stages) < 1 || (width >> stages) < 1)
    throw std::invalid_argument("cnn: " + std::to_string(stages) + " pooling stages need inputs of at least " +
                                std::to_string(int64_t{1} << stages) + " pixels a side, got " + std::to_string(height) +
                                "x" + std::to_string(width));
  int64_t c = in_channels;
  for (int64_t out : o.channels) {
    features_->push_back(nn::Conv2d(nn::Conv2dOptions(c, out, o.kernel).padding(o.kernel / 2)));
    features_->push_back(nn::ReLU());
    features_->push_back(nn::MaxPool2d(2));
    c = out;
  }
  int64_t width_in = c * (height >> stages) * (width >> stages);
  for (int64_t h : o.hidden) {
    classifier_->push_back(nn::Linear(width_in, h));
    classifier_->push_back(nn::ReLU());
    width_in = h;
  }
  classifier_->push_back(nn::Linear(width_in, num_classes));
  register_module("features", features_);
  register_module("classifier", classifier_);
}

torch::Tensor CnnImpl::forward(torch::Tensor x) { return classifier_->forward(features_->forward(x).flatten(1)); }

}  // namespace htga::models
