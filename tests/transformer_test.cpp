// Transformer models: shapes, masking (padding and causality), tied embeddings, and that one SGD
// step lowers the loss on a fixed batch.

#include "experiments/models/transformer.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "experiments/models/zoo.h"

using namespace htga::models;

namespace {

TransformerOptions tiny(double dropout = 0.0) {
  TransformerOptions o;
  o.vocab_size = 20;
  o.max_len = 16;
  o.layers = 2;
  o.d_model = 16;
  o.heads = 2;
  o.ff = 32;
  o.dropout = dropout;
  return o;
}

/// Packs ids and segments given as rows into [B, 2, L].
torch::Tensor packed(const std::vector<std::vector<int64_t>>& ids, const std::vector<std::vector<int64_t>>& segs) {
  std::vector<torch::Tensor> rows;
  for (size_t i = 0; i < ids.size(); ++i)
    rows.push_back(torch::stack({torch::tensor(ids[i], torch::kLong), torch::tensor(segs[i], torch::kLong)}));
  return torch::stack(rows);
}

}  // namespace

TEST_CASE("transformer heads: output shapes for packed and plain inputs", "[text]") {
  torch::manual_seed(0);
  auto x = packed({{2, 5, 6, 3, 7, 3, 0, 0}, {2, 9, 3, 4, 4, 3, 0, 0}},
                  {{0, 0, 0, 0, 1, 1, 0, 0}, {0, 0, 0, 1, 1, 1, 0, 0}});
  TransformerEncoder encoder(tiny());
  CHECK(encoder->forward(x).sizes() == torch::IntArrayRef({2, 8, 16}));
  TransformerClassifier classifier(tiny(), 3);
  CHECK(classifier->forward(x).sizes() == torch::IntArrayRef({2, 3}));
  TransformerRegressor regressor(tiny());
  CHECK(regressor->forward(x).sizes() == torch::IntArrayRef({2}));
  TransformerSpan span(tiny());
  auto logits = span->forward(x);
  CHECK(logits.sizes() == torch::IntArrayRef({2, 8, 2}));
  CHECK(logits[0][6][0].item<double>() == kMaskedLogit);  // [PAD] positions
  CHECK(logits[1][7][1].item<double>() == kMaskedLogit);
  CHECK(logits[0][5][1].item<double>() > kMaskedLogit / 2);
  TransformerLm lm(tiny());
  CHECK(lm->forward(torch::randint(20, {3, 10}, torch::kLong)).sizes() == torch::IntArrayRef({3, 10, 20}));

  // Ids alone mean segment 0 everywhere.
  encoder->eval();
  auto ids = x.select(1, 0);
  CHECK(torch::equal(encoder->forward(ids), encoder->encode(ids, torch::zeros_like(ids))));
  CHECK(torch::equal(encoder->forward(torch::stack({ids, torch::zeros_like(ids)}, 1)), encoder->forward(ids)));

  CHECK_THROWS_AS(encoder->forward(torch::zeros({2, 17}, torch::kLong)), std::invalid_argument);  // > max_len
  auto bad = tiny();
  bad.heads = 3;
  CHECK_THROWS_AS(TransformerEncoder(bad), std::invalid_argument);
}

TEST_CASE("encoder: padding does not change the outputs of the unpadded positions", "[text]") {
  torch::manual_seed(1);
  TransformerClassifier model(tiny(/*dropout=*/0.1), 3);
  model->eval();
  auto encoder = model->encoder();
  auto short_x = packed({{2, 5, 6, 3, 7, 8, 3}}, {{0, 0, 0, 0, 1, 1, 1}});
  auto long_x = packed({{2, 5, 6, 3, 7, 8, 3, 0, 0, 0, 0, 0}}, {{0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0}});
  auto a = encoder->forward(short_x);
  auto b = encoder->forward(long_x).narrow(1, 0, 7);
  CHECK(torch::allclose(a, b, /*rtol=*/1e-5, /*atol=*/1e-5));
  CHECK(torch::allclose(model->forward(short_x), model->forward(long_x), 1e-5, 1e-5));

  // In a batch: the short example padded beside a longer one gives its own outputs.
  auto batch = packed({{2, 5, 6, 3, 7, 8, 3, 0, 0}, {2, 9, 9, 9, 3, 4, 4, 4, 3}},
                      {{0, 0, 0, 0, 1, 1, 1, 0, 0}, {0, 0, 0, 0, 0, 1, 1, 1, 1}});
  CHECK(torch::allclose(encoder->forward(batch)[0].narrow(0, 0, 7), a[0], 1e-5, 1e-5));

  // A real token where the padding was does change them (the mask is what hides it).
  auto other = packed({{2, 5, 6, 3, 7, 8, 3, 9, 0, 0, 0, 0}}, {{0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0}});
  CHECK_FALSE(torch::allclose(encoder->forward(other).narrow(1, 0, 7), a, 1e-5, 1e-5));
}

TEST_CASE("causal LM: the output at t does not depend on tokens after t; embeddings are tied", "[text]") {
  torch::manual_seed(2);
  auto o = tiny(/*dropout=*/0.1);
  TransformerLm lm(o);
  lm->eval();
  auto x = torch::tensor({{1, 4, 7, 2, 9, 9, 3, 5}}, torch::kLong);
  auto y = x.clone();
  y.narrow(1, 4, 4).fill_(11);
  auto lx = lm->forward(x), ly = lm->forward(y);
  CHECK(torch::allclose(lx.narrow(1, 0, 4), ly.narrow(1, 0, 4), 1e-5, 1e-5));
  CHECK_FALSE(torch::allclose(lx.narrow(1, 4, 1), ly.narrow(1, 4, 1), 1e-5, 1e-5));
  // A prefix alone gives the same outputs as inside the longer sequence.
  CHECK(torch::allclose(lm->forward(x.narrow(1, 0, 3)), lx.narrow(1, 0, 3), 1e-5, 1e-5));

  // Tied: no output matrix of its own. V*D + max_len*D, per block 2 LayerNorms (4D), qkv (3D*D+3D),
  // out (D*D+D), ff (D*F+F + F*D+D), and the final LayerNorm (2D).
  const int64_t d = o.d_model, f = o.ff, v = o.vocab_size;
  const int64_t block = 4 * d + 3 * d * d + 3 * d + d * d + d + d * f + f + f * d + d;
  CHECK(parameter_count(*lm) == v * d + o.max_len * d + o.layers * block + 2 * d);
  TransformerEncoder encoder(o);
  CHECK(parameter_count(*encoder) == v * d + o.max_len * d + 2 * d + o.layers * block + 2 * d);
}

TEST_CASE("transformer heads: one SGD step lowers the loss on a fixed batch", "[text]") {
  torch::manual_seed(3);
  auto x = packed({{2, 5, 6, 3, 7, 3, 0, 0}, {2, 9, 3, 4, 4, 3, 0, 0}, {2, 11, 12, 13, 3, 0, 0, 0}},
                  {{0, 0, 0, 0, 1, 1, 0, 0}, {0, 0, 0, 1, 1, 1, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}});
  namespace F = torch::nn::functional;

  SECTION("classifier") {
    TransformerClassifier model(tiny(), 3);
    auto y = torch::tensor({0, 1, 2}, torch::kLong);
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05));
    auto before = F::cross_entropy(model->forward(x), y);
    sgd.zero_grad();
    before.backward();
    sgd.step();
    CHECK(F::cross_entropy(model->forward(x), y).item<double>() < before.item<double>());
  }
  SECTION("regressor") {
    TransformerRegressor model(tiny());
    auto y = torch::tensor({0.5f, 4.0f, 2.5f});
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.01));
    auto before = F::mse_loss(model->forward(x), y);
    sgd.zero_grad();
    before.backward();
    sgd.step();
    CHECK(F::mse_loss(model->forward(x), y).item<double>() < before.item<double>());
  }
  SECTION("span head, start and end targets [B, 2]") {
    TransformerSpan model(tiny());
    auto y = torch::tensor({{4, 5}, {3, 4}, {0, 0}}, torch::kLong);
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05));
    auto before = F::cross_entropy(model->forward(x), y);
    sgd.zero_grad();
    before.backward();
    sgd.step();
    CHECK(std::isfinite(before.item<double>()));
    CHECK(F::cross_entropy(model->forward(x), y).item<double>() < before.item<double>());
  }
  SECTION("causal LM on windows") {
    TransformerLm model(tiny());
    auto windows = torch::randint(20, {4, 9}, torch::kLong);
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05));
    auto before = lm_loss(model, windows);
    CHECK(before.item<double>() < std::log(20.0) + 1.0);  // untrained: unit-scale logits, near uniform
    sgd.zero_grad();
    before.backward();
    sgd.step();
    CHECK(lm_loss(model, windows).item<double>() < before.item<double>());
  }
}
