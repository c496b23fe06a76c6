#include "experiments/data/text_dataset.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "experiments/data/glue.h"
#include "experiments/data/lm.h"
#include "experiments/data/squad.h"
#include "experiments/data/tokenizer.h"
#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool is_glue(const std::string& name) { return name.rfind("glue/", 0) == 0; }

std::vector<std::string> squad_files(const json& config) {
  const std::string dir = config.at("path").get<std::string>();
  const std::string version = config.value("version", std::string("1.1"));
  return {(fs::path(dir) / ("train-v" + version + ".json")).string(),
          (fs::path(dir) / ("dev-v" + version + ".json")).string()};
}

/// The task's main metric, as GLUE's leaderboard reports it first.
std::string glue_metric(const std::string& task) {
  if (task == "cola") return "mcc";
  if (task == "mrpc" || task == "qqp") return "f1";
  if (task == "stsb") return "pearson";
  return "acc";
}

Tokenizer make_tokenizer(const json& config, const std::vector<std::string>& train_texts) {
  const std::string vocab = config.value("vocab", std::string());
  if (!vocab.empty()) return Tokenizer::wordpiece(vocab);
  WordVocabOptions o;
  o.min_count = config.value("min_count", o.min_count);
  o.max_vocab = config.value("max_vocab", int64_t{30000});
  return Tokenizer::word_level(train_texts, o);
}

/// The validation rows and the training rows of `labels` as the config asks (split_rows), with
/// the dataset's path in front of an error.
SplitRows rows_of_config(const json& config, const std::vector<int64_t>& labels, int64_t num_classes) {
  try {
    return split_rows(labels, num_classes, config.value("val_size", int64_t{0}), config.value("train_size", int64_t{0}),
                      config.value("train_fraction", 1.0), config.value("data_seed", uint64_t{0}));
  } catch (const InputError& e) {
    throw InputError(config.at("path").get<std::string>() + ": " + e.what());
  }
}

std::vector<int64_t> all_rows(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

/// Positions after which every example of every split is padding: the tensors are cut there.
int64_t used_length(const std::vector<const std::vector<Encoding>*>& splits) {
  int64_t l = 2;
  for (const auto* s : splits)
    for (const Encoding& e : *s) l = std::max(l, e.length);
  return l;
}

torch::Tensor pack_cut(const std::vector<Encoding>& e, int64_t length, int64_t max_len) {
  if (e.empty()) return torch::zeros({0, 2, length}, torch::kInt64);
  return pack_encodings(e).narrow(2, 0, std::min(length, max_len)).contiguous();
}

void load_glue_like(const json& config, Dataset& d) {
  const std::string name = config.at("name").get<std::string>();
  const std::string dir = config.at("path").get<std::string>();
  const int64_t max_len = config.value("max_len", int64_t{128});
  TextTask t = is_glue(name) ? read_glue(name.substr(5), dir) : read_sentence_task(dir, name);
  d.glue_task = is_glue(name) ? name.substr(5) : "";
  d.metric = glue_metric(d.glue_task);
  d.task = t.regression ? TaskKind::kRegress : TaskKind::kTextClassify;
  d.num_classes = t.regression ? 1 : static_cast<int64_t>(t.label_names.size());
  if (t.train.size() == 0) throw InputError(t.files[0] + ": no examples");
  if (t.dev.size() == 0) throw InputError(t.files[1] + ": no examples");

  const std::vector<int64_t> strata =
      t.regression ? std::vector<int64_t>(static_cast<size_t>(t.train.size()), 0) : t.train.labels;
  const SplitRows rows = rows_of_config(config, strata, d.num_classes);
  std::vector<std::string> train_texts;
  for (int64_t r : rows.train) {
    train_texts.push_back(t.train.a[static_cast<size_t>(r)]);
    if (t.pair) train_texts.push_back(t.train.b[static_cast<size_t>(r)]);
  }
  const Tokenizer tok = make_tokenizer(config, train_texts);
  d.vocab_size = tok.vocab().size();

  auto encode = [&](const TextSplit& s, const std::vector<int64_t>& which) {
    std::vector<Encoding> out;
    out.reserve(which.size());
    for (int64_t r : which) {
      const auto i = static_cast<size_t>(r);
      out.push_back(t.pair ? tok.encode(s.a[i], s.b[i], max_len) : tok.encode(s.a[i], max_len));
    }
    return out;
  };
  auto targets = [&](const TextSplit& s, const std::vector<int64_t>& which) {
    if (t.regression) {
      std::vector<float> v;
      for (int64_t r : which) v.push_back(s.scores[static_cast<size_t>(r)]);
      return torch::tensor(v, torch::kFloat32).reshape({static_cast<int64_t>(v.size())});
    }
    std::vector<int64_t> v;
    for (int64_t r : which) v.push_back(s.labels[static_cast<size_t>(r)]);
    return torch::tensor(v, torch::kInt64).reshape({static_cast<int64_t>(v.size())});
  };
  const auto dev_rows = all_rows(t.dev.size());
  const auto train_e = encode(t.train, rows.train), val_e = encode(t.train, rows.val), test_e = encode(t.dev, dev_rows);
  std::vector<Encoding> test2_e;
  if (t.dev_mismatched.size() > 0) test2_e = encode(t.dev_mismatched, all_rows(t.dev_mismatched.size()));
  const int64_t length = used_length({&train_e, &val_e, &test_e, &test2_e});
  d.max_len = max_len;
  d.train_x = pack_cut(train_e, length, max_len);
  d.train_y = targets(t.train, rows.train);
  d.val_x = pack_cut(val_e, length, max_len);
  d.val_y = targets(t.train, rows.val);
  d.test_x = pack_cut(test_e, length, max_len);
  d.test_y = targets(t.dev, dev_rows);
  if (!test2_e.empty()) {
    d.test2_name = "test_mismatched";
    d.test2_x = pack_cut(test2_e, length, max_len);
    d.test2_y = targets(t.dev_mismatched, all_rows(t.dev_mismatched.size()));
  }
}

void load_squad(const json& config, Dataset& d) {
  const auto files = squad_files(config);
  const int64_t max_len = config.value("max_len", int64_t{256});
  const SquadData train = read_squad(files[0]), dev = read_squad(files[1]);
  if (train.questions.empty()) throw InputError(files[0] + ": no questions");
  if (dev.questions.empty()) throw InputError(files[1] + ": no questions");
  d.task = TaskKind::kSpan;
  d.metric = "f1";
  d.num_classes = 0;
  const bool v2 = config.value("version", std::string("1.1")) == "2.0";

  const SplitRows rows = rows_of_config(config, std::vector<int64_t>(train.questions.size(), 0), 1);
  std::vector<std::string> texts;
  std::vector<bool> context_seen(train.contexts.size());
  for (int64_t r : rows.train) {
    const SquadQuestion& q = train.questions[static_cast<size_t>(r)];
    texts.push_back(q.question);
    if (!context_seen[static_cast<size_t>(q.context)]) texts.push_back(train.contexts[static_cast<size_t>(q.context)]);
    context_seen[static_cast<size_t>(q.context)] = true;
  }
  const Tokenizer tok = make_tokenizer(config, texts);
  d.vocab_size = tok.vocab().size();
  d.max_len = max_len;

  struct Encoded {
    torch::Tensor x, y;
    std::shared_ptr<SpanGold> gold;
  };
  auto encode = [&](const SquadData& s, const std::vector<int64_t>& which, bool keep) {
    auto gold = std::make_shared<SpanGold>();
    gold->allow_null = v2;
    std::vector<Encoding> enc;
    std::vector<int64_t> spans;
    for (int64_t r : which) {
      const SquadQuestion& q = s.questions[static_cast<size_t>(r)];
      const std::string& context = s.contexts[static_cast<size_t>(q.context)];
      std::optional<std::pair<size_t, size_t>> answer;
      for (const SquadAnswer& a : q.answers)
        if (a.byte_start >= 0) {
          answer = std::make_pair(static_cast<size_t>(a.byte_start), static_cast<size_t>(a.byte_start) + a.text.size());
          break;
        }
      SquadFeature f = encode_squad(tok, q.question, context, answer, max_len);
      enc.push_back(f.encoding);
      spans.push_back(f.start);
      spans.push_back(f.end);
      if (keep) {
        std::vector<std::string> golds;
        for (const SquadAnswer& a : q.answers) golds.push_back(a.text);
        gold->features.push_back(std::move(f));
        gold->contexts.push_back(context);
        gold->golds.push_back(std::move(golds));
      }
    }
    Encoded e;
    e.x = enc.empty() ? torch::zeros({0, 2, max_len}, torch::kInt64) : pack_encodings(enc);
    e.y = torch::tensor(spans, torch::kInt64).reshape({static_cast<int64_t>(which.size()), 2});
    e.gold = gold;
    return e;
  };
  Encoded tr = encode(train, rows.train, false), va = encode(train, rows.val, true),
          te = encode(dev, all_rows(static_cast<int64_t>(dev.questions.size())), true);
  d.train_x = tr.x, d.train_y = tr.y;
  d.val_x = va.x, d.val_y = va.y, d.span_val = va.gold;
  d.test_x = te.x, d.test_y = te.y, d.span_test = te.gold;
}

void load_lm(const json& config, Dataset& d) {
  const std::string path = config.at("path").get<std::string>();
  LmOptions o;
  o.level = parse_lm_level(config.value("level", std::string("word")), "level");
  o.min_count = config.value("min_count", o.min_count);
  o.max_vocab = config.value("max_vocab", o.max_vocab);
  const LmCorpus c = read_lm_corpus(path, o);
  const int64_t length = config.value("seq_len", int64_t{64});
  d.task = TaskKind::kLm;
  d.metric = "ppl";
  d.vocab_size = static_cast<int64_t>(c.vocab.size());
  d.max_len = length;
  d.train_x = make_windows(c.train, length);
  d.val_x = make_windows(c.valid, length);
  d.test_x = make_windows(c.test, length);
  const char* names[] = {"train", "valid", "test"};
  const torch::Tensor* splits[] = {&d.train_x, &d.val_x, &d.test_x};
  for (int i = 0; i < 3; ++i)
    if (splits[i]->size(0) == 0)
      throw InputError(path + ": the " + names[i] +
                       " split has fewer than seq_len + 1 = " + std::to_string(length + 1) + " tokens");
}

}  // namespace

bool is_text_dataset(const std::string& name) {
  return is_glue(name) || name == "text/sentences" || name == "squad" || name == "lm";
}

void check_text_available(const json& config) {
  const std::string name = config.at("name").get<std::string>();
  const std::string path = config.at("path").get<std::string>();
  const std::string vocab = config.value("vocab", std::string());
  if (!vocab.empty() && !fs::is_regular_file(vocab))
    throw InputError("vocab " + vocab + ": no such file (a BERT vocab.txt, one token per line)");
  if (is_glue(name)) {
    check_glue_folder(name.substr(5), path);
  } else if (name == "text/sentences") {
    for (const char* f : {"train.tsv", "dev.tsv"})
      if (!fs::is_regular_file(fs::path(path) / f))
        throw InputError(name + ": " + path + " has no " + f +
                         "; expected train.tsv and dev.tsv in GLUE's single-sentence format (header "
                         "sentence<TAB>label), e.g. from scripts/make-text-data");
  } else if (name == "squad") {
    for (const std::string& f : squad_files(config))
      if (!fs::is_regular_file(f))
        throw InputError("squad: no " + f + "; expected the official train-vX.json and dev-vX.json of version " +
                         config.value("version", std::string("1.1")) + " in " + path);
  } else if (name == "lm") {
    if (fs::is_directory(path)) {
      for (const char* f : {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"})
        if (!fs::is_regular_file(fs::path(path) / f))
          throw InputError("lm: " + path + " has no " + f +
                           "; expected wiki.train.tokens, wiki.valid.tokens and wiki.test.tokens (the WikiText "
                           "layout), or give one plain-text file");
    } else if (!fs::is_regular_file(path)) {
      throw InputError("lm: no file or folder " + path +
                       " (a plain-text file, or a folder with wiki.{train,valid,test}.tokens; "
                       "scripts/make-text-data writes one)");
    }
  } else {
    throw InputError("unknown dataset \"" + name + "\"");
  }
}

std::vector<std::string> text_source_files(const json& config) {
  const std::string name = config.at("name").get<std::string>();
  const std::string path = config.at("path").get<std::string>();
  std::vector<std::string> out;
  if (is_glue(name)) {
    for (const auto& f : glue_file_names(name.substr(5))) out.push_back((fs::path(path) / f).string());
  } else if (name == "text/sentences") {
    for (const char* f : {"train.tsv", "dev.tsv"}) out.push_back((fs::path(path) / f).string());
  } else if (name == "squad") {
    out = squad_files(config);
  } else if (fs::is_directory(path)) {
    for (const char* f : {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"})
      out.push_back((fs::path(path) / f).string());
  } else {
    out.push_back(path);
  }
  return out;
}

Dataset load_text_dataset(const json& config, const torch::Device& device) {
  const auto t0 = std::chrono::steady_clock::now();
  check_text_available(config);
  const std::string name = config.at("name").get<std::string>();
  Dataset d;
  d.name = name;
  if (name == "squad")
    load_squad(config, d);
  else if (name == "lm")
    load_lm(config, d);
  else
    load_glue_like(config, d);
  for (torch::Tensor* t : {&d.train_x, &d.train_y, &d.val_x, &d.val_y, &d.test_x, &d.test_y, &d.test2_x, &d.test2_y})
    if (t->defined()) *t = t->to(device);
  d.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  d.cache_note = "none (text is tokenized at load)";
  return d;
}

}  // namespace htga::data
