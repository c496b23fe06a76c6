#include "experiments/models/transformer.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace htga::models {

namespace {

void check_options(const TransformerOptions& o) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("transformer: " + m); };
  if (o.vocab_size < 1) fail("vocab_size must be positive, got " + std::to_string(o.vocab_size));
  if (o.max_len < 1) fail("max_len must be positive, got " + std::to_string(o.max_len));
  if (o.layers < 1) fail("layers must be positive, got " + std::to_string(o.layers));
  if (o.heads < 1 || o.d_model < 1 || o.d_model % o.heads != 0)
    fail("d_model (" + std::to_string(o.d_model) + ") must be a positive multiple of heads (" +
         std::to_string(o.heads) + ")");
  if (o.ff < 1) fail("ff must be positive, got " + std::to_string(o.ff));
  if (!(o.dropout >= 0 && o.dropout < 1)) fail("dropout must be in [0, 1), got " + std::to_string(o.dropout));
  if (o.segments < 1) fail("segments must be positive, got " + std::to_string(o.segments));
}

/// Linear layers N(0, 0.02) with zero biases (BERT, GPT-2); position and segment embeddings
/// N(0, 1); LayerNorm stays (1, 0). Token embeddings are set by init_tokens.
void init_one(torch::nn::Module& m) {
  if (auto* linear = m.as<torch::nn::Linear>()) {
    linear->weight.normal_(0, 0.02);
    if (linear->bias.defined()) linear->bias.zero_();
  } else if (auto* embedding = m.as<torch::nn::Embedding>()) {
    embedding->weight.normal_(0, 1);
  }
}

/// `module` and everything below it (the module itself by reference: a constructor cannot ask
/// for its own shared_ptr).
void init_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  init_one(module);
  for (auto& m : module.modules(/*include_self=*/false)) init_one(*m);
}

/// Token embeddings E ~ N(0, 1/d_model), scaled by sqrt(d_model) on input (Vaswani et al. 2017,
/// sec. 3.4): the residual stream starts at unit scale, and the tied logits h E^T of a
/// LayerNormed h start at unit scale too. BERT's N(0, 0.02) embeddings suit Adam; under plain
/// SGD the final LayerNorm multiplies their gradients by ~1/0.02 and a step of lr 0.01 already
/// overshoots.
void init_tokens(torch::nn::Embedding& tokens, int64_t d_model) {
  torch::NoGradGuard no_grad;
  tokens->weight.normal_(0, 1.0 / std::sqrt(static_cast<double>(d_model)));
}

void check_length(int64_t length, const TransformerOptions& o) {
  if (length > o.max_len)
    throw std::invalid_argument("transformer: sequence of " + std::to_string(length) + " positions, max_len is " +
                                std::to_string(o.max_len));
}

torch::nn::ModuleList make_blocks(const TransformerOptions& o) {
  torch::nn::ModuleList blocks;
  for (int64_t i = 0; i < o.layers; ++i) blocks->push_back(TransformerBlock(o));
  return blocks;
}

torch::Tensor run_blocks(torch::nn::ModuleList& blocks, torch::Tensor x, const torch::Tensor& blocked) {
  for (auto& m : *blocks) x = m->as<TransformerBlock>()->forward(x, blocked);
  return x;
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> unpack_tokens(const torch::Tensor& x) {
  if (x.dim() == 3 && x.size(1) == 2) {
    auto ids = x.select(1, 0).to(torch::kLong);
    return {ids, x.select(1, 1).to(torch::kLong)};
  }
  if (x.dim() == 2) {
    auto ids = x.to(torch::kLong);
    return {ids, torch::zeros_like(ids)};
  }
  throw std::invalid_argument("transformer: expected token ids [B, L] or packed ids and segments [B, 2, L], got " +
                              std::to_string(x.dim()) + " dimensions");
}

SelfAttentionImpl::SelfAttentionImpl(int64_t d_model, int64_t heads, double dropout) : heads_(heads) {
  qkv_ = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
  out_ = register_module("out", torch::nn::Linear(d_model, d_model));
  dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& blocked) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), dk = d / heads_;
  // [B, L, 3D] -> 3 x [B, heads, L, dk]
  auto qkv = qkv_->forward(x).view({b, l, 3, heads_, dk}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(dk));
  scores = scores.masked_fill(blocked, kMaskedLogit);
  auto weights = dropout_->forward(torch::softmax(scores, /*dim=*/-1));
  auto y = torch::matmul(weights, v).transpose(1, 2).reshape({b, l, d});
  return out_->forward(y);
}

TransformerBlockImpl::TransformerBlockImpl(const TransformerOptions& o) {
  ln1_ = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  attention_ = register_module("attention", SelfAttention(o.d_model, o.heads, o.dropout));
  ln2_ = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model})));
  ff1_ = register_module("ff1", torch::nn::Linear(o.d_model, o.ff));
  ff2_ = register_module("ff2", torch::nn::Linear(o.ff, o.d_model));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& blocked) {
  auto h = x + dropout_->forward(attention_->forward(ln1_->forward(x), blocked));
  return h + dropout_->forward(ff2_->forward(torch::gelu(ff1_->forward(ln2_->forward(h)))));
}

TransformerEncoderImpl::TransformerEncoderImpl(const TransformerOptions& options) : options_(options) {
  check_options(options_);
  tokens_ = register_module("tokens", torch::nn::Embedding(options_.vocab_size, options_.d_model));
  positions_ = register_module("positions", torch::nn::Embedding(options_.max_len, options_.d_model));
  segments_ = register_module("segments", torch::nn::Embedding(options_.segments, options_.d_model));
  dropout_ = register_module("dropout", torch::nn::Dropout(options_.dropout));
  blocks_ = register_module("blocks", make_blocks(options_));
  ln_f_ = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options_.d_model})));
  init_weights(*this);
  init_tokens(tokens_, options_.d_model);
}

torch::Tensor TransformerEncoderImpl::encode(const torch::Tensor& ids, const torch::Tensor& segments) {
  TORCH_CHECK(ids.dim() == 2 && segments.sizes() == ids.sizes(), "transformer: ids and segments must be [B, L]");
  const int64_t l = ids.size(1);
  check_length(l, options_);
  auto pos = torch::arange(l, ids.options().dtype(torch::kLong));
  const double scale = std::sqrt(static_cast<double>(options_.d_model));
  auto x = tokens_->forward(ids) * scale + positions_->forward(pos).unsqueeze(0) + segments_->forward(segments);
  x = dropout_->forward(x);
  auto blocked = ids.eq(0).view({ids.size(0), 1, 1, l});  // [PAD] keys
  return ln_f_->forward(run_blocks(blocks_, x, blocked));
}

torch::Tensor TransformerEncoderImpl::forward(const torch::Tensor& x) {
  auto [ids, segments] = unpack_tokens(x);
  return encode(ids, segments);
}

TransformerClassifierImpl::TransformerClassifierImpl(const TransformerOptions& options, int64_t num_classes) {
  if (num_classes < 2) throw std::invalid_argument("transformer: a classifier needs at least two classes");
  encoder_ = register_module("encoder", TransformerEncoder(options));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
  head_ = register_module("head", torch::nn::Linear(options.d_model, num_classes));
  init_weights(*head_);
}

torch::Tensor TransformerClassifierImpl::forward(const torch::Tensor& x) {
  auto h = encoder_->forward(x).select(1, 0);  // [CLS]
  return head_->forward(dropout_->forward(h));
}

TransformerRegressorImpl::TransformerRegressorImpl(const TransformerOptions& options) {
  encoder_ = register_module("encoder", TransformerEncoder(options));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
  head_ = register_module("head", torch::nn::Linear(options.d_model, 1));
  init_weights(*head_);
}

torch::Tensor TransformerRegressorImpl::forward(const torch::Tensor& x) {
  auto h = encoder_->forward(x).select(1, 0);
  return head_->forward(dropout_->forward(h)).squeeze(1);
}

TransformerSpanImpl::TransformerSpanImpl(const TransformerOptions& options) {
  encoder_ = register_module("encoder", TransformerEncoder(options));
  head_ = register_module("head", torch::nn::Linear(options.d_model, 2));
  init_weights(*head_);
}

torch::Tensor TransformerSpanImpl::forward(const torch::Tensor& x) {
  auto [ids, segments] = unpack_tokens(x);
  auto logits = head_->forward(encoder_->encode(ids, segments));  // [B, L, 2]
  return logits.masked_fill(ids.eq(0).unsqueeze(-1), kMaskedLogit);
}

TransformerLmImpl::TransformerLmImpl(const TransformerOptions& options) : options_(options) {
  check_options(options_);
  tokens_ = register_module("tokens", torch::nn::Embedding(options_.vocab_size, options_.d_model));
  positions_ = register_module("positions", torch::nn::Embedding(options_.max_len, options_.d_model));
  dropout_ = register_module("dropout", torch::nn::Dropout(options_.dropout));
  blocks_ = register_module("blocks", make_blocks(options_));
  ln_f_ = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options_.d_model})));
  init_weights(*this);
  init_tokens(tokens_, options_.d_model);
}

torch::Tensor TransformerLmImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 2, "transformer-lm: expected token ids [B, L]");
  auto ids = input.to(torch::kLong);
  const int64_t l = ids.size(1);
  check_length(l, options_);
  auto pos = torch::arange(l, ids.options());
  const double scale = std::sqrt(static_cast<double>(options_.d_model));
  auto x = dropout_->forward(tokens_->forward(ids) * scale + positions_->forward(pos).unsqueeze(0));
  auto blocked = torch::ones({l, l}, ids.options().dtype(torch::kBool)).triu(/*diagonal=*/1).view({1, 1, l, l});
  auto h = ln_f_->forward(run_blocks(blocks_, x, blocked));
  return torch::matmul(h, tokens_->weight.t());  // tied: the output projection is the embedding
}

torch::Tensor lm_loss(TransformerLm& model, const torch::Tensor& windows) {
  TORCH_CHECK(windows.dim() == 2 && windows.size(1) >= 2, "lm_loss: expected windows [B, L + 1]");
  const int64_t l = windows.size(1) - 1;
  auto logits = model->forward(windows.narrow(1, 0, l));
  auto targets = windows.narrow(1, 1, l).to(torch::kLong);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

}  // namespace htga::models
