#include "experiments/step_log.h"

#include <fmt/format.h>

#include <cmath>

namespace htga::experiments {

void StepLog::add(int64_t epoch, const std::vector<torch::Tensor>& stats) {
  for (const torch::Tensor& t : stats) stats_.push_back(t.scalar_type() == torch::kFloat32 ? t : t.to(torch::kFloat32));
  epochs_.push_back(epoch);
}

void StepLog::add_layers(int64_t step, const torch::Tensor& alphas) { layers_.emplace_back(step, alphas); }

StepLog::Flushed StepLog::flush(int64_t next_step) {
  Flushed f;
  f.stored = next_step;
  if (epochs_.empty()) return f;
  auto host = torch::stack(stats_).to(torch::kCPU, torch::kFloat64).contiguous();
  const double* v = host.data_ptr<double>();
  const auto count = static_cast<int64_t>(epochs_.size());
  const int64_t first = next_step - count;
  std::vector<storage::StepRow> rows;
  for (int64_t i = 0; i < count; ++i) {
    const double* r = v + kStats * i;
    rows.push_back({first + i, epochs_[i], r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]});
    if (!std::isfinite(r[0])) {
      f.finite = false;
      f.error = fmt::format("loss is {} at step {}", r[0], first + i);
      f.stored = first + i + 1;  // the steps stored; later ones are dropped
      break;
    }
  }
  f.epoch = rows.back().epoch;
  f.loss = rows.back().loss;
  f.alpha = rows.back().alpha_hat;
  out_.steps(std::move(rows));
  if (!layers_.empty()) {
    std::vector<torch::Tensor> stacked;
    for (const auto& [s, t] : layers_) stacked.push_back(t);
    auto layer_host = torch::stack(stacked).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* lv = layer_host.data_ptr<double>();
    const int64_t per = layer_host.size(1);
    std::vector<storage::LayerAlphaRow> layer_rows;
    for (size_t i = 0; i < layers_.size(); ++i)
      for (int64_t l = 0; l < per; ++l) layer_rows.push_back({layers_[i].first, l, lv[i * per + l]});
    out_.layer_alphas(std::move(layer_rows));
    layers_.clear();
  }
  stats_.clear();
  epochs_.clear();
  return f;
}

}  // namespace htga::experiments
