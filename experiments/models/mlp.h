#pragma once

#include <torch/torch.h>

#include <vector>

namespace htga::models {

/// Multi-layer perceptron on flattened inputs: Linear, ReLU, ..., Linear (logits).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential layers_;
};
TORCH_MODULE(Mlp);

}  // namespace htga::models
