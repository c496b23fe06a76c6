#include "experiments/models/mlp.h"

namespace htga::models {

MlpImpl::MlpImpl(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes) {
  int64_t width = in_features;
  for (int64_t h : hidden) {
    layers_->push_back(torch::nn::Linear(width, h));
    layers_->push_back(torch::nn::ReLU());
    width = h;
  }
  layers_->push_back(torch::nn::Linear(width, num_classes));
  register_module("layers", layers_);
}

torch::Tensor MlpImpl::forward(torch::Tensor x) { return layers_->forward(x.flatten(1)); }

}  // namespace htga::models
