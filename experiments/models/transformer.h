#pragma once
// Transformers trained from scratch for the language tasks: a pre-norm encoder (BERT-like
// inputs: token, learned position and segment embeddings) with classification, regression and
// span heads, and a causal language model with tied input/output embeddings (GPT-2-like).
// Attention is written out (Vaswani et al. 2017, eq. 1: softmax(Q K^T / sqrt(d_k)) V) so that its
// masks are explicit.

#include <torch/torch.h>

#include <cstdint>
#include <utility>

namespace htga::models {

struct TransformerOptions {
  int64_t vocab_size = 0;  // token ids 0..vocab_size-1; id 0 is [PAD] for the encoder
  int64_t max_len = 128;   // most positions (learned position embeddings)
  int64_t layers = 2;      // transformer blocks
  int64_t d_model = 128;   // width of the residual stream
  int64_t heads = 4;       // attention heads; d_model must be a multiple
  int64_t ff = 512;        // hidden width of the feed-forward layer
  double dropout = 0.1;    // on embeddings, attention weights and residual branches
  int64_t segments = 2;    // segment ids 0..segments-1 (encoder only)
};

/// A value below any logit a model produces, written where a position is masked out. Finite
/// (unlike -inf) so that a fully masked row cannot turn into NaN, and representable in half
/// precision; exp(kMaskedLogit - max) is exactly 0 in float32.
inline constexpr double kMaskedLogit = -1e4;

/// Token ids [B, L] and segment ids [B, L] (int64) from the packed form [B, 2, L] (row 0 ids, row
/// 1 segments), or from ids [B, L] alone (segments 0). Throws std::invalid_argument otherwise.
std::pair<torch::Tensor, torch::Tensor> unpack_tokens(const torch::Tensor& x);

/// Multi-head self-attention. `blocked` (bool, broadcastable to [B, heads, L, L]) is true where
/// a query may not attend to a key.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t d_model, int64_t heads, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& blocked);

 private:
  int64_t heads_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(SelfAttention);

/// Pre-norm block: x + Dropout(Attention(LN(x))), then x + Dropout(W2 GELU(W1 LN(x))).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const TransformerOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& blocked);

 private:
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  SelfAttention attention_{nullptr};
  torch::nn::Linear ff1_{nullptr}, ff2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(TransformerBlock);

/// The encoder: sqrt(d_model) E[id] + P[position] + S[segment], blocks, a final LayerNorm.
/// Positions holding id 0 ([PAD]) are masked as keys; their own outputs are computed but
/// meaningless. Initialisation: E ~ N(0, 1/d_model), P, S ~ N(0, 1), linear layers N(0, 0.02)
/// (unit-scale residual stream, so that plain SGD steps are sane; see the source).
class TransformerEncoderImpl : public torch::nn::Module {
 public:
  /// Throws std::invalid_argument for options that do not fit (vocab_size < 1, d_model not a
  /// multiple of heads, ...).
  explicit TransformerEncoderImpl(const TransformerOptions& options);
  /// Hidden states [B, L, d_model] of token ids and segment ids, both int64 [B, L], L <= max_len.
  torch::Tensor encode(const torch::Tensor& ids, const torch::Tensor& segments);
  /// The same for the packed input [B, 2, L] or ids [B, L] (see unpack_tokens).
  torch::Tensor forward(const torch::Tensor& x);
  const TransformerOptions& options() const { return options_; }

 private:
  TransformerOptions options_;
  torch::nn::Embedding tokens_{nullptr}, positions_{nullptr}, segments_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
};
TORCH_MODULE(TransformerEncoder);

/// Classification head: the [CLS] (first) position's hidden state -> Dropout -> Linear:
/// logits [B, num_classes] of the packed input [B, 2, L] or ids [B, L].
class TransformerClassifierImpl : public torch::nn::Module {
 public:
  TransformerClassifierImpl(const TransformerOptions& options, int64_t num_classes);
  torch::Tensor forward(const torch::Tensor& x);
  TransformerEncoder encoder() const { return encoder_; }

 private:
  TransformerEncoder encoder_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(TransformerClassifier);

/// Regression head (STS-B): as the classifier with one output, returned as [B].
class TransformerRegressorImpl : public torch::nn::Module {
 public:
  explicit TransformerRegressorImpl(const TransformerOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  TransformerEncoder encoder_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(TransformerRegressor);

/// Span head (SQuAD): start and end logits per position, [B, L, 2] ([..., 0] start, [..., 1]
/// end), kMaskedLogit at [PAD] positions. That layout lets
/// torch::nn::functional::cross_entropy(logits, targets) with targets [B, 2] (start, end) give BERT's loss,
/// the mean of the start and end losses. Position 0 ([CLS]) is the no-answer span of v2.0.
class TransformerSpanImpl : public torch::nn::Module {
 public:
  explicit TransformerSpanImpl(const TransformerOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  TransformerEncoder encoder_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(TransformerSpan);

/// Causal language model: sqrt(d_model) E[id] + P[position], blocks under a causal mask
/// (position t attends to 0..t), a final LayerNorm, and logits h E^T with E the token embedding
/// (tied), initialised as the encoder's.
/// forward: ids [B, L] (L <= max_len) -> logits [B, L, vocab_size], position t predicting t+1.
class TransformerLmImpl : public torch::nn::Module {
 public:
  explicit TransformerLmImpl(const TransformerOptions& options);
  torch::Tensor forward(const torch::Tensor& ids);
  const TransformerOptions& options() const { return options_; }

 private:
  TransformerOptions options_;
  torch::nn::Embedding tokens_{nullptr}, positions_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
};
TORCH_MODULE(TransformerLm);

/// Mean token cross-entropy (nats) of a causal LM on windows [B, L + 1] (as make_windows gives):
/// inputs [:, :L], targets [:, 1:]. exp of it is the perplexity.
torch::Tensor lm_loss(TransformerLm& model, const torch::Tensor& windows);

}  // namespace htga::models
