#include "experiments/registry.h"

namespace htga::experiments {

using nlohmann::json;

const ParamSpec* Entry::find(const std::string& param) const {
  for (const auto& p : params)
    if (p.name == param) return &p;
  return nullptr;
}

const Entry* Registry::find(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

std::string Registry::names() const {
  std::string out;
  for (const auto& e : entries) out += (out.empty() ? "" : ", ") + e.name;
  return out;
}

std::string describe(ParamType type) {
  switch (type) {
    case ParamType::kNumber:
      return "a number";
    case ParamType::kInteger:
      return "an integer";
    case ParamType::kString:
      return "a string";
    case ParamType::kIntList:
      return "a list of positive integers";
    case ParamType::kNumberOrNull:
      return "a number or null";
    case ParamType::kBool:
      return "true or false";
  }
  return "?";
}

namespace {

/// The largest width or channel count a list parameter may hold (a layer of a million units
/// is already far beyond what these models are for; larger values only exhaust memory).
constexpr double kMaxWidth = 1 << 20;
constexpr double kInf = std::numeric_limits<double>::infinity();

ParamSpec positive(std::string name, json def, std::string help, ParamType t = ParamType::kNumber) {
  return {std::move(name), t, std::move(def), std::move(help), 0.0, true, {}};
}
ParamSpec non_negative(std::string name, json def, std::string help, ParamType t = ParamType::kNumber) {
  return {std::move(name), t, std::move(def), std::move(help), 0.0, false, {}};
}
ParamSpec decay(std::string name, json def, std::string help) {
  // EMA factors live in [0, 1): 1 would never move.
  ParamSpec p{std::move(name), ParamType::kNumber, std::move(def), std::move(help), 0.0, false, {}};
  p.max = 1.0;
  p.max_exclusive = true;
  return p;
}
ParamSpec fraction(std::string name, json def, std::string help) {
  ParamSpec p{std::move(name), ParamType::kNumber, std::move(def), std::move(help), 0.0, false, {}};
  p.max = 1.0;
  p.max_exclusive = true;
  return p;
}
/// Adam's and AdamW's parameters; they differ only in what weight decay means.
std::vector<ParamSpec> adam_params(ParamSpec weight_decay) {
  return {positive("lr", 0.001, "learning rate"),
          decay("beta1", 0.9, "first-moment factor"),
          decay("beta2", 0.999, "second-moment factor"),
          non_negative("eps", 1e-8, "denominator term"),
          non_negative("clip_norm", 0.0, "largest global L2 norm of the gradient (0 = no clipping)"),
          std::move(weight_decay)};
}
/// A setting that does not enter a cell's key (ParamSpec::in_key).
ParamSpec outside_key(ParamSpec p) {
  p.in_key = false;
  return p;
}
std::vector<std::string> names_of(const Registry& r) {
  std::vector<std::string> out;
  for (const auto& e : r.entries) out.push_back(e.name);
  return out;
}
}  // namespace

namespace {

ParamSpec path_param(json def, std::string help) {
  return {"path", ParamType::kString, std::move(def), std::move(help), -kInf, false, {}};
}

/// The settings every dataset has: the low-data subset, the validation split, augmentation.
std::vector<ParamSpec> with_common(std::vector<ParamSpec> params, const char* augment) {
  ParamSpec train_fraction{"train_fraction",
                           ParamType::kNumber,
                           1.0,
                           "train on this fraction of each class (1 = all; not with train_size)",
                           0.0,
                           true,
                           {}};
  train_fraction.max = 1.0;  // (0, 1]
  params.push_back(non_negative("train_size", 0,
                                "train on this many examples, equal per class (0 = the whole training set)",
                                ParamType::kInteger));
  params.push_back(train_fraction);
  params.push_back(non_negative("val_size", 0,
                                "validation examples carved from the training set, equal per class, "
                                "never trained on (0 = no validation split)",
                                ParamType::kInteger));
  params.push_back({"data_seed",
                    ParamType::kInteger,
                    0,
                    "seed of the validation split and the training subset (the same for every run seed)",
                    -kInf,
                    false,
                    {}});
  params.push_back({"augment",
                    ParamType::kString,
                    augment,
                    "train-time augmentation of each batch: none, or crop-flip (random 4-pixel-padded crop and "
                    "horizontal flip)",
                    -kInf,
                    false,
                    {"none", "crop-flip"}});
  return params;
}

/// The settings of every text dataset: sequence length and vocabulary.
std::vector<ParamSpec> text_params(json path, std::string path_help, int64_t max_len) {
  return {
      path_param(std::move(path), std::move(path_help)),
      {"max_len",
       ParamType::kInteger,
       max_len,
       "tokens per example after packing ([CLS] a [SEP] (b [SEP])); longer examples are cut",
       3.0,
       false,
       {}},
      {"vocab",
       ParamType::kString,
       "",
       "a BERT vocab.txt for WordPiece (lower-cased); \"\" = a word-level vocabulary of the training split",
       -kInf,
       false,
       {}},
      positive("min_count", 1, "word-level vocabulary: words seen fewer times in training become [UNK]",
               ParamType::kInteger),
      non_negative("max_vocab", 30000, "word-level vocabulary: most words kept (0 = no limit)", ParamType::kInteger)};
}

/// The low-data subset and validation split of the text tasks (no augmentation).
std::vector<ParamSpec> with_subsets(std::vector<ParamSpec> params) {
  params = with_common(std::move(params), "none");
  params.pop_back();  // augment: images only
  return params;
}

Entry glue_entry(const std::string& task, const std::string& folder, const std::string& what) {
  return {"glue/" + task,
          "GLUE " + folder + ": " + what + "; the dev split is the test split (GLUE's test labels are hidden)",
          with_subsets(text_params("data/glue/" + folder,
                                   "the task's folder as GLUE's download lays it out (train.tsv, dev.tsv" +
                                       std::string(task == "mnli" ? ", dev_matched.tsv, dev_mismatched.tsv" : "") + ")",
                                   128))};
}

}  // namespace

namespace {

std::vector<Entry> image_datasets() {
  return {{"mnist", "MNIST, 28x28 grey digits in 10 classes, from gzipped or plain IDX files",
           with_common({path_param(nullptr,
                                   "folder with train-images-idx3-ubyte(.gz), train-labels-..., "
                                   "t10k-images-..., t10k-labels-...")},
                       "none")},
          {"fashion-mnist", "Fashion-MNIST, 28x28 grey images in 10 classes, from gzipped or plain IDX files",
           with_common({path_param("/usr/share/datasets/fashion-mnist",
                                   "folder with train-images-idx3-ubyte(.gz), train-labels-..., t10k-images-..., "
                                   "t10k-labels-...")},
                       "none")},
          {"cifar10", "CIFAR-10, 32x32 colour images in 10 classes, binary version",
           with_common({path_param(nullptr,
                                   "folder with data_batch_1..5.bin and test_batch.bin (or with "
                                   "cifar-10-batches-bin/ inside)")},
                       "crop-flip")},
          {"cifar100", "CIFAR-100, 32x32 colour images in 100 classes (20 superclasses), binary version",
           with_common({path_param(nullptr, "folder with train.bin and test.bin (or with cifar-100-binary/ inside)"),
                        {"labels",
                         ParamType::kString,
                         "fine",
                         "fine (100 classes) or coarse (20 superclasses)",
                         -kInf,
                         false,
                         {"fine", "coarse"}}},
                       "crop-flip")},
          {"image-folder",
           "images in class folders (ImageNet, Imagenette layout): path/train/<class>/*.png|jpg and "
           "path/val/<class> or path/test/<class>; decoded once, then read from the cache",
           with_common({path_param(nullptr, "root folder holding train/ and val/ (or test/)"),
                        positive("size", 64, "side of the square images after the central crop and resize, in pixels",
                                 ParamType::kInteger),
                        {"channels", ParamType::kInteger, 3, "1 (grey) or 3 (RGB)", 1.0, false, {}, 3.0, false}},
                       "none")},
          {"packed",
           "images packed by htga pack (DIR/train.pack, DIR/val.pack: the test split), streamed batch by batch by "
           "loader_threads workers, never held whole; training batches random-resized-cropped and flipped, "
           "evaluation resized and centre-cropped; normalised with ImageNet's mean and std",
           [] {
             auto p = with_common(
                 {path_param(nullptr, "folder holding train.pack and val.pack (htga pack --out)"),
                  positive("crop", 224, "side of the square images fed to the model, in pixels", ParamType::kInteger)},
                 "none");
             p.pop_back();  // augment: packed batches are always random-resized-cropped and flipped
             return p;
           }()}};
}

std::vector<Entry> text_datasets() {
  return {glue_entry("cola", "CoLA", "acceptability of single sentences, Matthews correlation"),
          glue_entry("sst2", "SST-2", "sentiment of single sentences, accuracy"),
          glue_entry("mrpc", "MRPC", "paraphrase pairs, F1 and accuracy"),
          glue_entry("qqp", "QQP", "duplicate question pairs, F1 and accuracy"),
          glue_entry("stsb", "STS-B", "similarity scores 0..5 of pairs (regression), Pearson and Spearman"),
          glue_entry("mnli", "MNLI",
                     "entailment in 3 classes, accuracy on dev_matched (test) and dev_mismatched "
                     "(test_mismatched)"),
          glue_entry("qnli", "QNLI", "question/sentence entailment, accuracy"),
          glue_entry("rte", "RTE", "entailment pairs, accuracy"),
          glue_entry("wnli", "WNLI", "Winograd entailment pairs, accuracy"),
          {"text/sentences",
           "sentences with labels in GLUE's single-sentence format (train.tsv, dev.tsv with the header "
           "sentence<TAB>label), e.g. the fortunes topics that scripts/make-text-data writes; accuracy",
           with_subsets(text_params("results/text-data/topics", "folder holding train.tsv and dev.tsv", 64))},
          {"squad",
           "SQuAD reading comprehension: answer spans in a context (one feature per question, the context cut "
           "at max_len); exact match and F1 in percent, as the official script",
           with_subsets([] {
             auto p = text_params("data/squad", "folder holding train-v1.1.json and dev-v1.1.json (v2.0: -v2.0)", 256);
             p.push_back({"version",
                          ParamType::kString,
                          "1.1",
                          "1.1, or 2.0 (unanswerable questions)",
                          -kInf,
                          false,
                          {"1.1", "2.0"}});
             return p;
           }())},
          {"lm",
           "language modelling: next-token prediction on windows of seq_len tokens; perplexity on valid and test",
           {path_param("results/text-data/lm",
                       "folder with wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens, or one plain-text file "
                       "(split 90/5/5 by lines)"),
            {"level",
             ParamType::kString,
             "word",
             "char or word (whitespace-separated, <eos> after each line)",
             -kInf,
             false,
             {"char", "word"}},
            {"seq_len", ParamType::kInteger, 64, "tokens per training window", 1.0, false, {}},
            positive("min_count", 1, "tokens seen fewer times in training become <unk>", ParamType::kInteger),
            non_negative("max_vocab", 0, "most tokens kept (0 = no limit)", ParamType::kInteger)}}};
}

}  // namespace

const Registry& datasets() {
  static const Registry r = [] {
    Registry out{"dataset", image_datasets()};
    for (auto& e : text_datasets()) out.entries.push_back(std::move(e));
    return out;
  }();
  return r;
}

namespace {
std::vector<ParamSpec> transformer_params() {
  return {positive("layers", 2, "transformer blocks", ParamType::kInteger),
          positive("d_model", 128, "width of the residual stream (a multiple of heads)", ParamType::kInteger),
          positive("heads", 4, "attention heads", ParamType::kInteger),
          positive("ff", 512, "hidden width of the feed-forward layers", ParamType::kInteger),
          fraction("dropout", 0.1, "dropout on embeddings, attention weights and residual branches")};
}
}  // namespace

const Registry& models() {
  static const Registry r{
      "model",
      {{"mlp",
        "multi-layer perceptron on flattened inputs, ReLU between layers",
        {{"hidden",
          ParamType::kIntList,
          json::array({256, 128}),
          "hidden layer widths (a list of lists expands in a grid)",
          -kInf,
          false,
          {},
          kMaxWidth}}},
       {"cnn",
        "small LeNet-style network: per stage conv (same padding) -> ReLU -> 2x2 max pool, then fully "
        "connected layers",
        {{"channels",
          ParamType::kIntList,
          json::array({32, 64}),
          "output channels of each conv stage",
          -kInf,
          false,
          {},
          kMaxWidth},
         {"hidden",
          ParamType::kIntList,
          json::array({128}),
          "widths of the fully connected layers before the logits",
          -kInf,
          false,
          {},
          kMaxWidth},
         positive("kernel", 5, "side of the square conv kernels (odd)", ParamType::kInteger)}},
       {"resnet20", "ResNet-20 for CIFAR (He et al. 2016, option A shortcuts), batch norm", {}},
       {"resnet56", "ResNet-56 for CIFAR (He et al. 2016, option A shortcuts), batch norm", {}},
       {"resnet18", "ResNet-18, CIFAR variant (3x3 stem, no max pool, projection shortcuts), batch norm", {}},
       {"resnet18-imagenet",
        "ResNet-18 for ImageNet-sized inputs, torchvision's layout (7x7 stride-2 stem, max pool, 4 stages of "
        "basic blocks), batch norm; 11.7M parameters for 1000 classes",
        {}},
       {"resnet50",
        "ResNet-50 v1.5 for ImageNet-sized inputs, torchvision's layout (7x7 stride-2 stem, max pool, bottleneck "
        "blocks with the stride on the 3x3 conv), batch norm; 25.6M parameters for 1000 classes",
        {}},
       {"vgg11", "VGG-11 with batch norm, CIFAR variant (one Linear after global average pooling)", {}},
       {"lenet5", "LeNet-5 (LeCun et al. 1998) with ReLU and max pooling; images of 12x12 or more", {}},
       {"transformer",
        "pre-norm transformer encoder trained from scratch; the head follows the dataset: classification from "
        "[CLS], regression (STS-B), start/end span logits (SQuAD), or the causal LM (lm)",
        transformer_params()},
       {"transformer-lm", "causal pre-norm transformer language model with tied embeddings (for the lm dataset)",
        transformer_params()}}};
  return r;
}

const Registry& optimizers() {
  static const Registry r{
      "optimizer",
      {{"sgd",
        "plain SGD: w -= lr * (g + weight_decay * w)",
        {positive("lr", 0.1, "learning rate"), non_negative("weight_decay", 0.0, "L2 penalty added to the gradient")}},
       {"sgd-clip",
        "SGD with the global gradient norm clipped at clip_norm (torch.nn.utils.clip_grad_norm_)",
        {positive("lr", 0.1, "learning rate"), positive("clip_norm", 1.0, "largest global L2 norm of the gradient"),
         non_negative("clip_value", 0.0,
                      "also clip each gradient element to [-clip_value, clip_value], before the norm (0 = off)"),
         non_negative("weight_decay", 0.0, "L2 penalty added to the gradient")}},
       {"momentum",
        "SGD with heavy-ball or Nesterov momentum (torch.optim.SGD, dampening 0)",
        {positive("lr", 0.1, "learning rate"),
         {"momentum", ParamType::kNumber, 0.9, "momentum factor", 0.0, true, {}},
         {"nesterov", ParamType::kBool, false, "Nesterov momentum", -kInf, false, {}},
         non_negative("clip_norm", 0.0, "largest global L2 norm of the gradient (0 = no clipping)"),
         non_negative("weight_decay", 0.0, "L2 penalty added to the gradient")}},
       {"adam", "Adam (torch.optim.Adam): weight_decay is an L2 penalty added to the gradient",
        adam_params(non_negative("weight_decay", 0.0, "L2 penalty added to the gradient"))},
       {"adamw", "AdamW (torch.optim.AdamW): decoupled weight decay, w -= lr * weight_decay * w",
        adam_params(non_negative("weight_decay", 0.01, "decoupled weight decay"))},
       {"htga",
        "Heavy-Tail Gradient Amplification: lr = lr0 * (alpha_hat / alpha0)^beta, clamped to [lr_min, lr_max], "
        "on a base optimizer (sgd unless `base` says otherwise), clipped like sgd-clip",
        {positive("lr", 0.05, "lr0, the rate when alpha_hat equals alpha0 and before any estimate"),
         positive("alpha0", 1.5, "target tail index"),
         {"beta", ParamType::kNumber, 1.0, "exponent of the rule (0 = plain clipped SGD)", -kInf, false, {}},
         non_negative("clip_norm", 1.0, "largest global L2 norm of the gradient (0 = no clipping)"),
         non_negative("weight_decay", 0.0, "L2 penalty added to the gradient"),
         {"lr_min", ParamType::kNumberOrNull, nullptr, "smallest rate (null = lr / 10)", 0.0, true, {}},
         {"lr_max", ParamType::kNumberOrNull, nullptr, "largest rate (null = 10 * lr)", 0.0, true, {}},
         decay("alpha_ema", 0.9, "EMA factor smoothing alpha_hat before the rule (0 = none)"),
         non_negative("warmup_steps", 10, "steps at rate lr0 before the rule applies", ParamType::kInteger),
         {"base",
          ParamType::kString,
          "sgd",
          "base optimizer that takes the update (its own settings, momentum, beta1, ..., keep their defaults)",
          -kInf,
          false,
          {"sgd", "momentum", "adam", "adamw"}},
         non_negative("max_lr_change", 0.0, "largest factor between consecutive rates (0 = no limit; e.g. 1.1)"),
         non_negative("alpha0_explore", 0.0,
                      "target while the smoothed loss is on a plateau (a heavier-tailed target; 0 = never)"),
         fraction("plateau_tol", 0.01, "relative improvement of the smoothed loss that ends a plateau"),
         positive("plateau_patience", 100, "steps without that improvement that make a plateau", ParamType::kInteger),
         non_negative("alpha0_final", 0.0, "target reached at the end of training (0 = no annealing)"),
         fraction("final_fraction", 0.2, "last fraction of the steps over which the target anneals")}}}};
  return r;
}

const Registry& estimators() {
  static const Registry r{
      "estimator",
      {{"hill",
        "Hill (1975) on the k largest magnitudes: alpha = k / sum_i log(X(i) / X(k+1)); k = floor(sqrt(n))",
        {}},
       {"pickands", "Pickands (1975) from X(k), X(2k), X(4k); k = floor(sqrt(n))", {}},
       {"moment", "moment estimator of Dekkers, Einmahl and de Haan (1989); k = floor(sqrt(n))", {}},
       {"stable",
        "block estimator for symmetric alpha-stable noise (Mohammadi et al. 2015; Simsekli et al. 2019), "
        "blocks of K1 = floor(sqrt(n))",
        {}},
       {"ks", "power-law fit with the KS-chosen xmin (Clauset, Shalizi, Newman 2009): Hill at a data-driven k", {}}}};
  return r;
}

namespace {

/// The train settings of the alpha_hat estimate.
std::vector<ParamSpec> alpha_params() {
  return {{"estimator", ParamType::kString, "hill", "tail-index estimator for alpha_hat", -kInf, false,
           names_of(estimators())},
          non_negative("alpha_every", 1,
                       "estimate alpha_hat of the gradient noise every this many steps (0 = never; "
                       "htga needs it)",
                       ParamType::kInteger),
          decay("noise_ema", 0.9, "noise = g_t - m_t, m_t an EMA of gradients with this factor"),
          {"noise",
           ParamType::kString,
           "noise",
           "what is estimated: noise (g_t - EMA), gradient (raw g_t coordinates), probe (every "
           "alpha_every steps, probe_batches minibatch gradients at the current weights minus "
           "their mean, pooled; Simsekli et al. 2019)",
           -kInf,
           false,
           {"noise", "gradient", "probe"}},
          {"scope",
           ParamType::kString,
           "global",
           "global (all parameters as one vector) or layer (one alpha_hat per parameter tensor, "
           "stored per layer; the step's alpha_hat is their median)",
           -kInf,
           false,
           {"global", "layer"}},
          positive("probe_batches", 8, "minibatches per probe (noise = probe)", ParamType::kInteger),
          non_negative("subsample", 0,
                       "estimate on a fixed random subset of this many coordinates (0 = all; "
                       "global scope)",
                       ParamType::kInteger),
          non_negative("k", 0,
                       "order statistics for hill, pickands and moment, block size for stable "
                       "(0 = floor(sqrt(n)))",
                       ParamType::kInteger),
          fraction("k_fraction", 0.0, "k as a fraction of n, e.g. 0.05 (0 = use k); overrides k")};
}

/// `a` then `b`.
std::vector<ParamSpec> joined(std::vector<ParamSpec> a, const std::vector<ParamSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

const Registry& train_settings() {
  static const Registry r{
      "setting",
      {{"train", "training settings, in a grid's \"defaults\" (a list expands like any hyper-parameter)",
        joined(joined({positive("epochs", 1, "passes over the training set", ParamType::kInteger),
                       positive("batch_size", 128, "examples per step", ParamType::kInteger),
                       outside_key({"device",
                                    ParamType::kString,
                                    "auto",
                                    "auto (CUDA when present), cpu, cuda or cuda:N",
                                    -kInf,
                                    false,
                                    {}}),
                       outside_key(
                           positive("loader_threads", 4,
                                    "threads that decode and crop the packed dataset's images (the same batches for "
                                    "any number)",
                                    ParamType::kInteger))},
                      alpha_params()),
               {{"schedule",
                 ParamType::kString,
                 "constant",
                 "learning-rate schedule shared by every optimizer: constant, step, cosine",
                 -kInf,
                 false,
                 {"constant", "step", "cosine"}},
                non_negative("lr_warmup_steps", 0, "linear warmup of the learning rate, in steps", ParamType::kInteger),
                positive("lr_step_every", 1000, "step schedule: steps between decays", ParamType::kInteger),
                positive("lr_gamma", 0.1, "step schedule: decay factor"),
                non_negative("train_eval_size", 10000,
                             "training-set accuracy (for the generalization gap) is measured on a fixed random subset "
                             "of this many examples after the last epoch (0 = the whole training set)",
                             ParamType::kInteger),
                outside_key(non_negative("test_every", 1,
                                         "evaluate the test split every this many epochs, and always after the last "
                                         "(0 = after the last only; selection never reads the test split)",
                                         ParamType::kInteger)),
                outside_key(non_negative("val_every", 1,
                                         "evaluate the validation split every this many epochs, and always after the "
                                         "last (0 = after the last only; selection reads the last)",
                                         ParamType::kInteger)),
                outside_key(non_negative("checkpoint_every", 1,
                                         "save model, optimizer, controller and RNG state every this many epochs, so "
                                         "that an interrupted run resumes there (0 = never)",
                                         ParamType::kInteger)),
                {"amp",
                 ParamType::kString,
                 "none",
                 "mixed precision: none, or bf16 (autocast: matrix products and convolutions in bfloat16; "
                 "parameters, gradients, losses and alpha_hat stay float32); for GPUs with bfloat16 units",
                 -kInf,
                 false,
                 {"none", "bf16"}},
                outside_key({"alpha_graph",
                             ParamType::kBool,
                             true,
                             "on CUDA, run the alpha_hat estimator as one captured CUDA graph (the same values with "
                             "one launch instead of dozens)",
                             -kInf,
                             false,
                             {}})})}}};
  return r;
}

}  // namespace htga::experiments
