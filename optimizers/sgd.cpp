#include "optimizers/sgd.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace htga::optimizers {

void Optimizer::zero_grad() {
  for (auto& p : params_) {
    auto& g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

void Optimizer::use_flat(torch::Tensor flat_params, torch::Tensor flat_grads) {
  int64_t total = 0;
  for (const auto& p : params_) total += p.numel();
  if (!flat_params.defined() || !flat_grads.defined() || flat_params.numel() != total || flat_grads.numel() != total)
    throw std::invalid_argument("use_flat: the flat buffers do not hold the parameters");
  flat_p_ = std::move(flat_params);
  flat_g_ = std::move(flat_grads);
}

std::vector<torch::Tensor> Optimizer::views_of(const torch::Tensor& flat) const {
  std::vector<torch::Tensor> out;
  int64_t offset = 0;
  for (const auto& p : params_) {
    out.push_back(flat.narrow(0, offset, p.numel()).view(p.sizes()));
    offset += p.numel();
  }
  return out;
}

torch::Tensor Optimizer::load_flat(const std::vector<torch::Tensor>& state, size_t first, size_t stride,
                                   std::vector<torch::Tensor>& views) const {
  bool any = false;
  for (size_t i = 0; i < params_.size(); ++i) any = any || state[first + i * stride].numel() != 0;
  std::vector<torch::Tensor> values;  // state may be `views` itself
  for (size_t i = 0; i < params_.size(); ++i) values.push_back(state[first + i * stride]);
  views.assign(params_.size(), torch::Tensor());
  if (!any) return {};
  // A tensor not created yet is zeros here: the first update then gives what creating it would
  // (momentum: b = 0 * momentum + d = d; Adam's moments start at zero anyway).
  auto flat = torch::zeros_like(flat_p_);
  views = views_of(flat);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i)
    if (values[i].defined() && values[i].numel() != 0) views[i].copy_(values[i].reshape(views[i].sizes()));
  return flat;
}

Sgd::Sgd(std::vector<torch::Tensor> params, SgdOptions options)
    : Optimizer(std::move(params)), options_(options), buffers_(params_.size()) {
  if (options_.weight_decay < 0) throw std::invalid_argument("Invalid weight_decay: must be >= 0");
  if (options_.momentum < 0) throw std::invalid_argument("Invalid momentum: must be >= 0");
  if (options_.nesterov && options_.momentum <= 0) throw std::invalid_argument("Nesterov momentum needs momentum > 0");
}

void Sgd::step(const torch::Tensor& lr) {
  torch::NoGradGuard no_grad;
  if (flat_step(lr)) return flat_update(lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const auto& g = p.grad();
    if (!g.defined()) continue;
    torch::Tensor d = options_.weight_decay != 0 ? g.add(p, options_.weight_decay) : g;
    if (options_.momentum != 0) {
      auto& b = buffers_[i];
      if (!b.defined())
        b = d.clone();
      else
        b.mul_(options_.momentum).add_(d);
      d = options_.nesterov ? d.add(b, options_.momentum) : b;
    }
    p.addcmul_(d, rate_of(lr, i), /*value=*/-1);
  }
}

void Sgd::flat_update(const torch::Tensor& lr) {
  torch::Tensor d = options_.weight_decay != 0 ? flat_g_.add(flat_p_, options_.weight_decay) : flat_g_;
  if (options_.momentum != 0) {
    if (!flat_buffer_.defined() && buffers_.front().defined())
      flat_buffer_ = load_flat(buffers_, 0, 1, buffers_);  // made per tensor before
    if (!flat_buffer_.defined()) {
      flat_buffer_ = d.clone();
      buffers_ = views_of(flat_buffer_);
    } else {
      flat_buffer_.mul_(options_.momentum).add_(d);
    }
    d = options_.nesterov ? d.add(flat_buffer_, options_.momentum) : flat_buffer_;
  }
  flat_p_.addcmul_(d, lr, /*value=*/-1);
}

Adam::Adam(std::vector<torch::Tensor> params, AdamOptions options)
    : Optimizer(std::move(params)), options_(options), m_(params_.size()), v_(params_.size()) {
  const auto& o = options_;
  if (!(o.beta1 >= 0 && o.beta1 < 1)) throw std::invalid_argument("Invalid beta1: must be in [0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) throw std::invalid_argument("Invalid beta2: must be in [0, 1)");
  if (!(o.eps >= 0)) throw std::invalid_argument("Invalid eps: must be >= 0");
  if (o.weight_decay < 0) throw std::invalid_argument("Invalid weight_decay: must be >= 0");
}

void Adam::step(const torch::Tensor& lr) {
  torch::NoGradGuard no_grad;
  const auto& o = options_;
  ++t_;
  const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(t_));
  const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(t_));
  if (flat_step(lr)) return flat_update(lr, bc1, bc2);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const auto& g0 = p.grad();
    if (!g0.defined()) continue;
    torch::Tensor g = g0;
    if (o.weight_decay != 0) {
      if (o.decoupled)
        p.sub_(p * rate_of(lr, i) * o.weight_decay);
      else
        g = g.add(p, o.weight_decay);
    }
    if (!m_[i].defined()) {
      m_[i] = torch::zeros_like(p);
      v_[i] = torch::zeros_like(p);
    }
    m_[i].mul_(o.beta1).add_(g, 1 - o.beta1);
    v_[i].mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
    auto denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(o.eps);
    p.sub_((rate_of(lr, i) / bc1) * m_[i] / denom);
  }
}

void Adam::flat_update(const torch::Tensor& lr, double bc1, double bc2) {
  const auto& o = options_;
  torch::Tensor g = flat_g_;
  if (o.weight_decay != 0) {
    if (o.decoupled)
      flat_p_.sub_(flat_p_ * lr * o.weight_decay);
    else
      g = g.add(flat_p_, o.weight_decay);
  }
  if (!flat_m_.defined() && m_.front().defined()) {  // made per tensor before
    flat_m_ = load_flat(m_, 0, 1, m_);
    flat_v_ = load_flat(v_, 0, 1, v_);
  }
  if (!flat_m_.defined()) {
    flat_m_ = torch::zeros_like(flat_p_);
    flat_v_ = torch::zeros_like(flat_p_);
    m_ = views_of(flat_m_);
    v_ = views_of(flat_v_);
  }
  flat_m_.mul_(o.beta1).add_(g, 1 - o.beta1);
  flat_v_.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
  auto denom = (flat_v_.sqrt() / std::sqrt(bc2)).add_(o.eps);
  flat_p_.sub_((lr / bc1) * flat_m_ / denom);
}

namespace {
// Tensors not yet created (before the first step) are saved as empty tensors.
torch::Tensor or_empty(const torch::Tensor& t) { return t.defined() ? t : torch::empty({0}); }
torch::Tensor or_undefined(const torch::Tensor& t, const torch::Tensor& like) {
  return t.numel() == 0 && like.numel() != 0 ? torch::Tensor() : t.to(like.device()).clone();
}
void check_size(const std::vector<torch::Tensor>& state, size_t expected, const char* what) {
  if (state.size() != expected)
    throw std::invalid_argument(std::string(what) + " state: expected " + std::to_string(expected) + " tensors, got " +
                                std::to_string(state.size()));
}
}  // namespace

std::vector<torch::Tensor> Sgd::state() const {
  std::vector<torch::Tensor> out;
  for (const auto& b : buffers_) out.push_back(or_empty(b).clone());
  return out;
}

void Sgd::load_state(const std::vector<torch::Tensor>& state) {
  check_size(state, buffers_.size(), "SGD");
  if (flat_p_.defined()) {
    flat_buffer_ = load_flat(state, 0, 1, buffers_);
    return;
  }
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i] = or_undefined(state[i], params_[i]);
}

std::vector<torch::Tensor> Adam::state() const {
  std::vector<torch::Tensor> out{torch::tensor(t_, torch::kInt64)};
  for (size_t i = 0; i < m_.size(); ++i) {
    out.push_back(or_empty(m_[i]).clone());
    out.push_back(or_empty(v_[i]).clone());
  }
  return out;
}

void Adam::load_state(const std::vector<torch::Tensor>& state) {
  check_size(state, 1 + 2 * m_.size(), "Adam");
  t_ = state[0].item<int64_t>();
  if (flat_p_.defined()) {
    flat_m_ = load_flat(state, 1, 2, m_);
    flat_v_ = load_flat(state, 2, 2, v_);
    return;
  }
  for (size_t i = 0; i < m_.size(); ++i) {
    m_[i] = or_undefined(state[1 + 2 * i], params_[i]);
    v_[i] = or_undefined(state[2 + 2 * i], params_[i]);
  }
}

}  // namespace htga::optimizers
