#include "experiments/task.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "experiments/data/augment.h"
#include "experiments/data/packed.h"
#include "experiments/metrics.h"
#include "experiments/torch_compat.h"

namespace htga::experiments {

namespace F = torch::nn::functional;

Task::Task(const data::Dataset& dataset) : d_(dataset), kind_(dataset.task) {}

Task::Batch Task::batch(const torch::Tensor& idx, at::Generator* augment_gen) const {
  if (d_.packed) {
    if (augment_gen) throw std::logic_error("Task::batch: packed training batches stream through PackedBatches");
    const data::PackedSource& s = *d_.packed;
    auto rows = idx.to(torch::kCPU, torch::kInt64).contiguous();
    pack::BatchStreamOptions o;
    for (int64_t i = 0; i < rows.numel(); ++i) o.indices.push_back(s.train_rows.at(rows.data_ptr<int64_t>()[i]));
    o.batch_size = std::max<int64_t>(1, rows.numel());
    o.train = false;
    o.shuffle = false;
    o.loader_threads = loader_threads_;
    o.ring = 1;  // one batch: one buffer
    data::PackedBatches stream(s, *s.train_pack, std::move(o));
    auto b = stream.next();
    if (!b) throw std::runtime_error("stopped while decoding a batch of " + s.train_pack->path());
    return {b->x, b->y};
  }
  if (kind_ == data::TaskKind::kImages) {
    auto x = d_.train_images(idx);
    if (d_.pixel_table.defined()) x = data::normalize_pixels(x, d_.pixel_table);
    if (augment_gen) x = data::augment_batch(x, d_.augment, *augment_gen);
    return {x, d_.train_y.index_select(0, idx)};
  }
  if (kind_ == data::TaskKind::kLm) {
    auto w = d_.train_x.index_select(0, idx);
    const int64_t l = w.size(1) - 1;
    return {w.narrow(1, 0, l), w.narrow(1, 1, l)};
  }
  return {d_.train_x.index_select(0, idx), d_.train_y.index_select(0, idx)};
}

torch::Tensor Task::loss(const torch::Tensor& out, const torch::Tensor& y) const {
  switch (kind_) {
    case data::TaskKind::kRegress:
      return F::mse_loss(out, y);
    case data::TaskKind::kLm:
      return F::cross_entropy(out.reshape({-1, out.size(-1)}), y.reshape({-1}));
    default:  // classes; spans: [B, L, 2] against [B, 2], the mean of the start and end losses
      return F::cross_entropy(out, y);
  }
}

torch::Tensor Task::accuracy(const torch::Tensor& out, const torch::Tensor& y) const {
  switch (kind_) {
    case data::TaskKind::kRegress:
      return torch::full({}, std::numeric_limits<float>::quiet_NaN(), out.options().dtype(torch::kFloat32));
    case data::TaskKind::kSpan:
      return out.argmax(1).eq(y).all(1).to(torch::kFloat32).mean();
    case data::TaskKind::kLm:
      return out.argmax(-1).eq(y).to(torch::kFloat32).mean();
    default:
      return out.argmax(1).eq(y).sum().to(torch::kFloat32) / static_cast<double>(y.size(0));
  }
}

std::vector<std::string> Task::eval_splits() const {
  std::vector<std::string> out;
  if (d_.val_size() > 0) out.push_back("val");
  out.push_back("test");
  if (d_.test2_x.defined()) out.push_back(d_.test2_name);
  return out;
}

std::string best_span_text(const float* logits, int64_t length, const data::SquadFeature& feature,
                           const std::string& context, bool allow_null, int64_t max_answer) {
  const auto& pos = feature.positions;
  const int64_t n = std::min<int64_t>(length, static_cast<int64_t>(pos.size()));
  auto in_context = [&](int64_t i) { return !pos[static_cast<size_t>(i)].text.empty(); };
  double best = -std::numeric_limits<double>::infinity();
  int64_t bs = 0, be = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (!in_context(i)) continue;
    for (int64_t j = i; j < std::min(n, i + max_answer) && in_context(j); ++j) {
      const double s = static_cast<double>(logits[2 * i]) + logits[2 * j + 1];
      if (s > best) best = s, bs = i, be = j;
    }
  }
  if (bs == 0 || (allow_null && static_cast<double>(logits[0]) + logits[1] > best)) return "";
  return data::feature_answer_text(feature, context, bs, be);
}

Task::Rows Task::rows(const std::string& split) const {
  const torch::Tensor *xp = nullptr, *yp = nullptr;
  Rows r;
  if (split == "train") {
    xp = &d_.train_x, yp = &d_.train_y;
  } else if (split == "val") {
    xp = &d_.val_x, yp = &d_.val_y, r.gold = d_.span_val.get();
  } else if (split == "test") {
    xp = &d_.test_x, yp = &d_.test_y, r.gold = d_.span_test.get();
  } else if (split == d_.test2_name && d_.test2_x.defined()) {
    xp = &d_.test2_x, yp = &d_.test2_y;
  } else {
    throw std::logic_error("no split \"" + split + "\" in dataset " + d_.name);
  }
  r.x = *xp, r.y = *yp;
  if (split != "train") return r;
  const int64_t n = d_.train_size();
  const bool subset = train_eval_size_ > 0 && n > train_eval_size_;
  if (subset || d_.train_rows.defined()) {  // the rows evaluated, through the row map if any
    auto rows = (subset ? train_eval_rows(n) : torch::arange(n, torch::kInt64)).to(r.x.device());
    r.x = d_.train_images(rows);
    if (r.y.defined() && r.y.size(0) == n) r.y = r.y.index_select(0, rows);
  }
  return r;
}

torch::Tensor Task::train_eval_rows(int64_t n) const {
  if (train_eval_size_ <= 0 || n <= train_eval_size_) return torch::arange(n, torch::kInt64);
  // The same rows for every run of the dataset: a permutation from a fixed seed.
  auto gen = at::detail::createCPUGenerator(0x7a1e5eedULL);
  auto picked = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64)).narrow(0, 0, train_eval_size_);
  return std::get<0>(picked.sort());
}

Evaluation Task::evaluate(torch::nn::AnyModule& model, torch::nn::Module& module, const std::string& split) const {
  const Rows r = d_.packed ? Rows{} : rows(split);
  // Inference mode: no autograd records and no version counters (cheaper than no_grad); the
  // tensors made here are read as numbers and never reach training.
  c10::InferenceMode inference;
  compat::Autocast autocast(d_.packed ? d_.packed->device : r.x.device(), amp_);
  module.eval();
  Evaluation ev = d_.packed                          ? evaluate_packed(model, split)
                  : kind_ == data::TaskKind::kImages ? evaluate_images(model, module, r)
                                                     : evaluate_text(model, r);
  module.train();
  return ev;
}

namespace {

/// Loss, top-1 and top-5 of image classification summed over chunks, on the device.
struct ImageScores {
  torch::Tensor loss_sum, correct, correct5;
  bool top5 = false;
  ImageScores(const torch::TensorOptions& on, bool with_top5)
      : loss_sum(torch::zeros({}, on.dtype(torch::kFloat64))),
        correct(torch::zeros({}, on.dtype(torch::kInt64))),
        correct5(torch::zeros({}, on.dtype(torch::kInt64))),
        top5(with_top5) {}
  void add(const torch::Tensor& logits, const torch::Tensor& y) {
    loss_sum += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum)).to(torch::kFloat64);
    correct += logits.argmax(1).eq(y).sum();
    if (top5) correct5 += std::get<1>(logits.topk(5, 1)).eq(y.unsqueeze(1)).any(1).sum();
  }
  Evaluation result(int64_t n) const {
    auto all = torch::stack({loss_sum, correct.to(torch::kFloat64), correct5.to(torch::kFloat64)}).cpu();
    Evaluation ev;
    ev.loss = all[0].item<double>() / n;
    ev.acc = all[1].item<double>() / n;
    ev.top5 = top5 ? all[2].item<double>() / n : NAN;
    ev.main = ev.acc;
    return ev;
  }
};

}  // namespace

Evaluation Task::evaluate_packed(torch::nn::AnyModule& model, const std::string& split) const {
  const data::PackedSource& s = *d_.packed;
  pack::BatchStreamOptions o;
  o.indices = s.rows_of(split);
  if (split == "train") {
    auto rows = train_eval_rows(static_cast<int64_t>(o.indices.size()));
    std::vector<int64_t> picked;
    for (int64_t i = 0; i < rows.numel(); ++i) picked.push_back(o.indices[rows.data_ptr<int64_t>()[i]]);
    o.indices = std::move(picked);
  }
  const auto n = static_cast<int64_t>(o.indices.size());
  Evaluation none;
  none.loss = NAN;
  if (n == 0) return none;
  o.batch_size = s.device.is_cuda() ? 256 : 32;  // as evaluate_images: small chunks stay in the CPU's cache
  o.train = false;
  o.shuffle = false;
  o.loader_threads = loader_threads_;
  data::PackedBatches stream(s, s.pack_of(split), std::move(o));
  ImageScores scores(torch::TensorOptions().device(s.device), d_.num_classes >= 100);
  int64_t seen = 0;
  while (auto b = stream.next()) {
    scores.add(model.forward(b->x), b->y);
    seen += b->y.size(0);
  }
  if (seen < n) {  // stopped on request: no measurement rather than part of the split
    none.stopped = true;
    return none;
  }
  return scores.result(n);
}

Evaluation Task::evaluate_images(torch::nn::AnyModule& model, torch::nn::Module& module, const Rows& r) const {
  // Loss, top-1 and (for 100+ classes) top-5 in chunks. On the CPU, small chunks keep a
  // convolution's activations in cache: on 1 thread the study's CNN (16/32 channels) evaluated
  // 90k images in 13 s at 32 against 66 s at 128 (and 22 s at 2000 for 18k). A model without
  // convolutions (no weight of 3 or more dimensions) has small activations and wants large
  // chunks like a GPU: the quick-start MLP evaluated 20k images on 2 threads in 0.13-0.16 s at
  // 32 and 0.08-0.12 s at 512 to 2048.
  const torch::Tensor &x = r.x, &y = r.y;
  bool convolutional = false;
  for (const auto& p : module.parameters()) convolutional = convolutional || p.dim() >= 3;
  const int64_t n = x.size(0), chunk = x.is_cuda() || !convolutional ? 1024 : 32;
  ImageScores scores(x.options(), d_.num_classes >= 100);
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = std::min(chunk, n - i);
    auto chunk_x = x.narrow(0, i, len);
    if (d_.pixel_table.defined()) chunk_x = data::normalize_pixels(chunk_x, d_.pixel_table);
    scores.add(model.forward(chunk_x), y.narrow(0, i, len));
  }
  return scores.result(n);
}

Evaluation Task::evaluate_text(torch::nn::AnyModule& model, const Rows& r) const {
  // Text: outputs gathered on the host, metrics computed there.
  const torch::Tensor &x = r.x, &y = r.y;
  const int64_t n = x.size(0);
  const int64_t chunk = kind_ == data::TaskKind::kLm ? 64 : 256;
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(x.device()));
  auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  TextOutputs out;
  auto sum_of = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = std::min(chunk, n - i);
    if (kind_ == data::TaskKind::kLm) {
      auto w = x.narrow(0, i, len);
      const int64_t l = w.size(1) - 1;
      auto inputs = w.narrow(1, 0, l), targets = w.narrow(1, 1, l);
      auto logits = model.forward(inputs);
      loss_sum += sum_of(F::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
                                          F::CrossEntropyFuncOptions().reduction(torch::kSum)));
      correct += logits.argmax(-1).eq(targets).sum();
      out.units += len * l;
      continue;
    }
    auto o = model.forward(x.narrow(0, i, len));
    auto yy = y.narrow(0, i, len);
    out.units += len;
    if (kind_ == data::TaskKind::kRegress) {
      loss_sum += sum_of(F::mse_loss(o, yy, F::MSELossFuncOptions().reduction(torch::kSum)));
      out.predictions.push_back(o.to(torch::kFloat64));
    } else if (kind_ == data::TaskKind::kTextClassify) {
      loss_sum += sum_of(F::cross_entropy(o, yy, F::CrossEntropyFuncOptions().reduction(torch::kSum)));
      auto pred = o.argmax(1);
      correct += pred.eq(yy).sum();
      out.predictions.push_back(pred);
    } else {  // span: the loss sums the mean of the start and end losses over examples
      loss_sum += sum_of(F::cross_entropy(o, yy, F::CrossEntropyFuncOptions().reduction(torch::kNone)).mean(1).sum());
      correct += o.argmax(1).eq(yy).all(1).sum();
      if (r.gold) span_answers(o, *r.gold, i, out.answers);
    }
  }
  auto totals = torch::stack({loss_sum, correct.to(torch::kFloat64)}).cpu();
  Evaluation ev;
  out.loss_sum = totals[0].item<double>();
  ev.loss = n > 0 ? out.loss_sum / static_cast<double>(out.units) : NAN;
  ev.acc = n > 0 ? totals[1].item<double>() / static_cast<double>(out.units) : NAN;
  text_metrics(ev, r, out);
  return ev;
}

void Task::span_answers(const torch::Tensor& logits, const data::SpanGold& gold, int64_t first,
                        std::vector<std::string>& answers) const {
  auto host = logits.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t l = host.size(1), len = host.size(0);
  for (int64_t b = 0; b < len; ++b) {
    const auto row = static_cast<size_t>(first + b);
    answers.push_back(
        best_span_text(host.data_ptr<float>() + b * l * 2, l, gold.features[row], gold.contexts[row], gold.allow_null));
  }
}

void Task::text_metrics(Evaluation& ev, const Rows& r, const TextOutputs& out) const {
  auto to_doubles = [](const torch::Tensor& t) {
    auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  auto to_ints = [](const torch::Tensor& t) {
    auto c = t.to(torch::kCPU, torch::kInt64).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  };
  switch (kind_) {
    case data::TaskKind::kLm:
      ev.metrics = {{"ppl", perplexity(out.loss_sum, out.units)}, {"acc", ev.acc}};
      break;
    case data::TaskKind::kRegress: {
      ev.acc = NAN;
      const auto p = to_doubles(torch::cat(out.predictions)), t = to_doubles(r.y);
      ev.metrics = {{"pearson", pearson(t, p)}, {"spearman", spearman(t, p)}};
      break;
    }
    case data::TaskKind::kTextClassify: {
      const auto p = to_ints(torch::cat(out.predictions)), t = to_ints(r.y);
      ev.metrics = {{"acc", ev.acc}};
      if (d_.glue_task == "cola") ev.metrics.push_back({"mcc", matthews_corrcoef(t, p)});
      if (d_.glue_task == "mrpc" || d_.glue_task == "qqp") ev.metrics.push_back({"f1", binary_f1(t, p)});
      break;
    }
    case data::TaskKind::kSpan: {
      ev.metrics = {{"acc", ev.acc}};
      if (r.gold) {
        const SquadScores s = squad_scores(out.answers, r.gold->golds);
        ev.metrics.push_back({"em", s.exact_match});
        ev.metrics.push_back({"f1", s.f1});
      }
      break;
    }
    default:
      break;
  }
  for (const auto& [name, value] : ev.metrics)
    if (name == d_.metric) ev.main = value;
}

}  // namespace htga::experiments
