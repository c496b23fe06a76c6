#include "experiments/data/lm.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "experiments/data/unicode.h"
#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The lines of `text`, each with its "\n" (the last one too, when the text ends with one).
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

}  // namespace

LmLevel parse_lm_level(const std::string& text, const std::string& what) {
  if (text == "char") return LmLevel::kChar;
  if (text == "word") return LmLevel::kWord;
  throw InputError(what + ": expected \"char\" or \"word\", got \"" + text + "\"");
}

std::vector<std::string> lm_tokens(const std::string& text, LmLevel level) {
  std::vector<std::string> out;
  if (level == LmLevel::kChar) {
    for (const auto& c : unicode::decode(text)) out.push_back(text.substr(c.begin, c.end - c.begin));
    return out;
  }
  // Python's line.split() + ['<eos>'] per line; a last line without "\n" still ends a line.
  for (const auto& line : lines_of(text)) {
    std::istringstream words(line);
    std::string w;
    while (words >> w) out.push_back(w);
    out.push_back(kLmEos);
  }
  return out;
}

LmCorpus read_lm_corpus(const std::string& path, const LmOptions& options) {
  if (options.min_count < 1) throw InputError(path + ": min_count must be at least 1");
  if (options.max_vocab < 0) throw InputError(path + ": max_vocab must be 0 (no limit) or positive");
  LmCorpus c;
  c.level = options.level;
  std::string texts[3];
  const char* split_names[3] = {"train", "valid", "test"};
  if (fs::is_directory(path)) {
    for (int i = 0; i < 3; ++i) {
      const std::string f = (fs::path(path) / (std::string("wiki.") + split_names[i] + ".tokens")).string();
      if (!fs::is_regular_file(f))
        throw InputError(path + ": no " + fs::path(f).filename().string() +
                         "; a language-modelling folder holds wiki.train.tokens, wiki.valid.tokens and "
                         "wiki.test.tokens (the WikiText layout), or give one plain-text file");
      texts[i] = read_file(f);
      c.files.push_back(f);
    }
  } else if (fs::is_regular_file(path)) {
    const double vf = options.valid_fraction, tf = options.test_fraction;
    if (!(vf >= 0 && tf >= 0 && vf + tf < 1))
      throw InputError(path + ": valid_fraction and test_fraction must be >= 0 with a sum below 1");
    const auto lines = lines_of(read_file(path));
    const auto n = static_cast<int64_t>(lines.size());
    const auto n_valid = static_cast<int64_t>(std::llround(vf * static_cast<double>(n)));
    const auto n_test = static_cast<int64_t>(std::llround(tf * static_cast<double>(n)));
    const int64_t n_train = n - n_valid - n_test;
    if (n_train < 1 || (vf > 0 && n_valid < 1) || (tf > 0 && n_test < 1))
      throw InputError(path + ": " + std::to_string(n) + " lines are too few to split into train (" +
                       std::to_string(n_train) + "), valid (" + std::to_string(n_valid) + ") and test (" +
                       std::to_string(n_test) + ") lines");
    for (int64_t i = 0; i < n; ++i) texts[i < n_train ? 0 : i < n_train + n_valid ? 1 : 2] += lines[i];
    c.files.push_back(path);
  } else {
    throw InputError(path +
                     ": not found; expected a plain-text file or a folder with wiki.train.tokens, "
                     "wiki.valid.tokens and wiki.test.tokens");
  }

  const auto train_tokens = lm_tokens(texts[0], options.level);
  c.vocab.push_back(kLmUnk);
  if (options.level == LmLevel::kWord) {
    c.vocab.push_back(kLmEos);
    c.eos_id = 1;
  }
  std::map<std::string, int64_t> counts;
  for (const auto& t : train_tokens) ++counts[t];
  for (const auto& s : c.vocab) counts.erase(s);
  std::vector<std::pair<std::string, int64_t>> kept;
  for (auto& [t, n] : counts)
    if (n >= options.min_count) kept.emplace_back(t, n);
  std::stable_sort(kept.begin(), kept.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  if (options.max_vocab > 0 && static_cast<int64_t>(kept.size()) > options.max_vocab) kept.resize(options.max_vocab);
  for (auto& [t, n] : kept) c.vocab.push_back(t);
  std::unordered_map<std::string, int64_t> index;
  for (size_t i = 0; i < c.vocab.size(); ++i) index[c.vocab[i]] = static_cast<int64_t>(i);

  auto encode = [&](const std::vector<std::string>& tokens, std::vector<int64_t>& ids, int64_t& unknown) {
    ids.reserve(tokens.size());
    for (const auto& t : tokens) {
      auto it = index.find(t);
      if (it == index.end() || it->second == c.unk_id) ++unknown;
      ids.push_back(it == index.end() ? c.unk_id : it->second);
    }
  };
  encode(train_tokens, c.train, c.train_unknown);
  encode(lm_tokens(texts[1], options.level), c.valid, c.valid_unknown);
  encode(lm_tokens(texts[2], options.level), c.test, c.test_unknown);
  if (c.train.size() < 2) throw InputError(path + ": the training split has fewer than two tokens");
  return c;
}

torch::Tensor make_windows(const std::vector<int64_t>& stream, int64_t length, int64_t stride) {
  if (length < 1) throw std::invalid_argument("make_windows: length must be positive");
  if (stride < 0) throw std::invalid_argument("make_windows: stride must be 0 (= length) or positive");
  if (stride == 0) stride = length;
  const auto n_ids = static_cast<int64_t>(stream.size());
  const int64_t n = n_ids < length + 1 ? 0 : (n_ids - length - 1) / stride + 1;
  auto out = torch::empty({n, length + 1}, torch::kLong);
  auto acc = out.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t <= length; ++t) acc[i][t] = stream[static_cast<size_t>(i * stride + t)];
  return out;
}

}  // namespace htga::data
