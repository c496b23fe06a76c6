// The model zoo: forward shapes, parameter counts against the published figures, one training
// step lowering the loss on a fixed batch, batch norm in eval mode, errors, `htga list`.

#include <catch2/catch.hpp>
#include <sstream>

#include "cli/commands.h"
#include "experiments/error.h"
#include "experiments/models/zoo.h"

using htga::InputError;
using htga::models::InputShape;
using nlohmann::json;

namespace {

const InputShape kCifar{3, 32, 32, 10};
const InputShape kMnist{1, 28, 28, 10};

double loss_on(torch::nn::AnyModule& model, const torch::Tensor& x, const torch::Tensor& y) {
  return torch::nn::functional::cross_entropy(model.forward(x), y).item<double>();
}

}  // namespace

TEST_CASE("every model maps a batch to logits", "[models]") {
  torch::manual_seed(0);
  for (const char* name : {"mlp", "cnn", "resnet20", "resnet56", "resnet18", "vgg11"}) {
    INFO(name);
    for (const InputShape& in : {kCifar, kMnist, InputShape{3, 64, 64, 100}}) {
      if (std::string(name) == "resnet56" && in.height == 64) continue;  // the slowest; 32x32 suffices
      auto model = htga::models::make_model({{"name", name}}, in);
      auto out = model.forward(torch::randn({2, in.channels, in.height, in.width}));
      CHECK(out.sizes() == torch::IntArrayRef({2, in.num_classes}));
    }
  }
}

TEST_CASE("parameter counts match the published figures", "[models]") {
  auto count = [](const char* name, const InputShape& in = kCifar) {
    return htga::models::parameter_count(json{{"name", name}}, in);
  };
  // ResNet-20 with option A shortcuts: convs 432 + 6*2304 + (4608 + 5*9216) + (18432 + 5*36864) = 267,696,
  // batch norm 2 * 688 = 1,376, Linear 64*10 + 10 = 650. He et al. 2016, Table 6: 0.27M.
  CHECK(count("resnet20") == 269722);
  CHECK(count("resnet20") == Approx(0.27e6).epsilon(0.01));
  // ResNet-56: 0.85M in the same table.
  CHECK(count("resnet56") == 853018);
  CHECK(count("resnet56") == Approx(0.85e6).epsilon(0.01));
  // ResNet-18, CIFAR variant: 11,173,962 for 10 classes (the figure CIFAR ResNet-18 code reports).
  CHECK(count("resnet18") == 11173962);
  // VGG-11 with batch norm and one Linear(512, 10): 9,231,114.
  CHECK(count("vgg11") == 9231114);
  // The fully connected layers follow the input: MLP 784*256+256 + 256*128+128 + 128*10+10.
  CHECK(count("mlp", kMnist) == 235146);
  // CNN on 28x28: conv 1*32*25+32, conv 32*64*25+64, Linear 64*7*7*128+128, Linear 128*10+10.
  CHECK(count("cnn", kMnist) == 832 + 51264 + 401536 + 1290);
  // More classes only widen the last layer.
  CHECK(count("resnet20", {3, 32, 32, 100}) - count("resnet20") == 90 * 65);
}

TEST_CASE("ImageNet ResNets: torchvision's parameter counts, logits on a small input", "[models]") {
  const InputShape imagenet{3, 224, 224, 1000};
  // torchvision.models.resnet50() and resnet18(): sum(p.numel() for p in m.parameters()).
  CHECK(htga::models::parameter_count(json{{"name", "resnet50"}}, imagenet) == 25557032);
  CHECK(htga::models::parameter_count(json{{"name", "resnet18-imagenet"}}, imagenet) == 11689512);
  // The head follows the classes: 2048 (512) features into each logit.
  CHECK(htga::models::parameter_count(json{{"name", "resnet50"}}, InputShape{3, 64, 64, 10}) == 25557032 - 990 * 2049);
  torch::manual_seed(3);
  for (const char* name : {"resnet50", "resnet18-imagenet"}) {
    INFO(name);
    auto model = htga::models::make_model({{"name", name}}, InputShape{3, 64, 64, 10});
    auto out = model.forward(torch::randn({2, 3, 64, 64}));
    CHECK(out.sizes() == torch::IntArrayRef({2, 10}));
    CHECK(torch::isfinite(out).all().item<bool>());
  }
}

TEST_CASE("one SGD step lowers the loss on a fixed batch", "[models]") {
  for (const char* name : {"mlp", "cnn", "resnet20", "resnet56", "resnet18", "vgg11"}) {
    INFO(name);
    torch::manual_seed(1);
    auto model = htga::models::make_model({{"name", name}}, kCifar);
    auto x = torch::randn({8, 3, 32, 32});
    auto y = torch::arange(8) % 10;
    std::vector<torch::Tensor> params = model.ptr()->parameters();
    torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.01));
    // Train mode throughout: batch norm uses the batch's statistics in both measurements.
    sgd.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model.forward(x), y);
    const double before = loss.item<double>();
    loss.backward();
    sgd.step();
    CHECK(loss_on(model, x, y) < before);
  }
}

TEST_CASE("batch norm uses running statistics in eval mode", "[models]") {
  torch::manual_seed(2);
  for (const char* name : {"resnet20", "resnet18", "vgg11"}) {
    INFO(name);
    auto model = htga::models::make_model({{"name", name}}, kCifar);
    auto& module = *model.ptr();
    auto x = torch::randn({4, 3, 32, 32});
    torch::NoGradGuard no_grad;
    module.train();
    model.forward(x);  // updates the running statistics once
    auto alone_train = model.forward(x.narrow(0, 0, 1));
    auto batch_train = model.forward(x).narrow(0, 0, 1);
    CHECK_FALSE(torch::allclose(alone_train, batch_train, 1e-4, 1e-5));  // batch statistics
    module.eval();
    auto alone = model.forward(x.narrow(0, 0, 1));
    auto in_batch = model.forward(x).narrow(0, 0, 1);
    CHECK(torch::allclose(alone, in_batch, 1e-4, 1e-5));  // independent of the other examples
  }
}

TEST_CASE("model configs that cannot be built are input errors", "[models]") {
  auto error_of = [](const json& cfg, const InputShape& in) {
    try {
      htga::models::make_model(cfg, in);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of({{"name", "lenet"}}, kCifar).rfind("unknown model \"lenet\"; valid: mlp, cnn, ", 0) == 0);
  CHECK(error_of({{"name", "cnn"}, {"channels", {8, 8, 8}}}, InputShape{1, 4, 4, 10}) ==
        "cnn: 3 pooling stages need inputs of at least 8 pixels a side, got 4x4");
  CHECK(error_of({{"name", "cnn"}, {"kernel", 4}}, kCifar) == "cnn: kernel must be odd, got 4");
  CHECK(htga::models::parse_input_shape("3x64x48", 100, "--input").width == 48);
  CHECK_THROWS_WITH(htga::models::parse_input_shape("3x64", 10, "--input"),
                    "--input: expected CxHxW with positive sizes, e.g. 3x32x32, got \"3x64\"");
}

TEST_CASE("htga list shows every model with its parameter count", "[models]") {
  std::ostringstream out;
  htga::cli::run_list(out);
  const std::string text = out.str();
  for (const char* name : {"cnn", "resnet20", "resnet56", "resnet18", "resnet18-imagenet", "resnet50", "vgg11",
                           "cifar10", "cifar100", "image-folder", "val_size", "train_fraction"})
    CHECK(text.find(name) != std::string::npos);
  CHECK(text.find("3x32x32: 269,722") != std::string::npos);
  CHECK(text.find("3x32x32: 11,173,962") != std::string::npos);
}

TEST_CASE("lenet5: LeNet-5's 61,706 parameters on 28x28 digits, logits per class", "[models]") {
  auto m = htga::models::make_model({{"name", "lenet5"}}, kMnist);
  CHECK(htga::models::parameter_count(*m.ptr()) == 61706);
  CHECK(m.forward(torch::zeros({2, 1, 28, 28})).sizes() == std::vector<int64_t>{2, 10});
  m = htga::models::make_model({{"name", "lenet5"}}, kCifar);
  CHECK(m.forward(torch::zeros({3, 3, 32, 32})).sizes() == std::vector<int64_t>{3, 10});
  CHECK_THROWS_AS(htga::models::make_model({{"name", "lenet5"}}, InputShape{1, 8, 8, 10}), htga::InputError);
}
