#include "experiments/data/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>

#include "experiments/data/unicode.h"
#include "experiments/error.h"

namespace htga::data {

namespace uc = unicode;

std::vector<OffsetToken> basic_tokenize_with_offsets(const std::string& text, const BasicTokenizerOptions& options) {
  std::vector<OffsetToken> out;
  OffsetToken word;
  bool open = false;
  auto flush = [&] {
    if (open && !word.text.empty()) out.push_back(word);
    word = OffsetToken{};
    open = false;
  };
  for (const auto& c : uc::decode(text)) {
    char32_t cp = c.cp;
    if (cp == 0 || cp == 0xFFFD || uc::is_control(cp)) continue;  // BERT's _clean_text
    if (uc::is_whitespace(cp)) {
      flush();
      continue;
    }
    if (options.lower_case) cp = uc::to_lower(cp);
    if (options.strip_accents) cp = uc::strip_accent(cp);
    if (cp != 0 && uc::is_punctuation(cp)) {
      flush();
      OffsetToken p{std::string(), c.begin, c.end};
      uc::append(p.text, cp);
      out.push_back(std::move(p));
      continue;
    }
    if (!open) {
      word.begin = c.begin;
      open = true;
    }
    word.end = c.end;
    if (cp != 0) uc::append(word.text, cp);  // 0: a combining accent, dropped
  }
  flush();
  return out;
}

std::vector<std::string> basic_tokenize(const std::string& text, const BasicTokenizerOptions& options) {
  std::vector<std::string> out;
  for (auto& t : basic_tokenize_with_offsets(text, options)) out.push_back(std::move(t.text));
  return out;
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens, const std::string& what) {
  Vocab v;
  v.tokens_ = std::move(tokens);
  for (size_t i = 0; i < v.tokens_.size(); ++i) v.index_[v.tokens_[i]] = static_cast<int64_t>(i);  // last wins, as BERT
  if (v.tokens_.empty() || v.tokens_[0] != kPadToken)
    throw std::invalid_argument(what + ": the first token (id 0) must be [PAD]");
  auto need = [&](const char* t) {
    auto it = v.index_.find(t);
    if (it == v.index_.end()) throw std::invalid_argument(what + ": no " + t + " token");
    return it->second;
  };
  v.unk_ = need(kUnkToken);
  v.cls_ = need(kClsToken);
  v.sep_ = need(kSepToken);
  v.mask_ = v.find(kMaskToken).value_or(-1);
  return v;
}

Vocab Vocab::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the vocabulary file (a BERT vocab.txt, one token per line)");
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    // BERT's load_vocab strips each line.
    const auto first = line.find_first_not_of(" \t\r\n");
    const auto last = line.find_last_not_of(" \t\r\n");
    tokens.push_back(first == std::string::npos ? std::string() : line.substr(first, last - first + 1));
  }
  if (!tokens.empty() && tokens[0].rfind("\xEF\xBB\xBF", 0) == 0) tokens[0].erase(0, 3);
  try {
    return from_tokens(std::move(tokens), path);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
}

int64_t Vocab::id(const std::string& token) const {
  auto it = index_.find(token);
  return it == index_.end() ? unk_ : it->second;
}

std::optional<int64_t> Vocab::find(const std::string& token) const {
  auto it = index_.find(token);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

Vocab build_word_vocab(const std::vector<std::string>& texts, const WordVocabOptions& options) {
  if (options.min_count < 1) throw std::invalid_argument("min_count must be at least 1");
  if (options.max_vocab < 0) throw std::invalid_argument("max_vocab must be 0 (no limit) or positive");
  std::vector<std::string> tokens{kPadToken, kUnkToken, kClsToken, kSepToken};
  if (options.mask_token) tokens.push_back(kMaskToken);
  std::map<std::string, int64_t> counts;
  for (const auto& t : texts)
    for (auto& w : basic_tokenize(t, options.basic)) ++counts[w];
  for (const auto& s : tokens) counts.erase(s);
  std::vector<std::pair<std::string, int64_t>> words;
  for (auto& [w, n] : counts)
    if (n >= options.min_count) words.emplace_back(w, n);
  std::stable_sort(words.begin(), words.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  if (options.max_vocab > 0 && static_cast<int64_t>(words.size()) > options.max_vocab) words.resize(options.max_vocab);
  for (auto& [w, n] : words) tokens.push_back(w);
  return Vocab::from_tokens(std::move(tokens));
}

std::vector<std::string> wordpiece(const std::string& word, const Vocab& vocab, int64_t max_chars_per_word) {
  const auto cps = uc::decode(word);
  const std::vector<std::string> unk{vocab.token(vocab.unk_id())};
  if (static_cast<int64_t>(cps.size()) > max_chars_per_word) return unk;
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < cps.size()) {
    size_t end = cps.size();
    std::optional<std::string> match;
    while (start < end) {
      std::string sub = word.substr(cps[start].begin, cps[end - 1].end - cps[start].begin);
      if (start > 0) sub = "##" + sub;
      if (vocab.contains(sub)) {
        match = std::move(sub);
        break;
      }
      --end;
    }
    if (!match) return unk;
    pieces.push_back(std::move(*match));
    start = end;
  }
  return pieces;
}

Tokenizer::Tokenizer(Vocab vocab, BasicTokenizerOptions basic, bool wordpiece, int64_t max_chars_per_word)
    : vocab_(std::move(vocab)), basic_(basic), wordpiece_(wordpiece), max_chars_per_word_(max_chars_per_word) {
  if (max_chars_per_word < 1) throw std::invalid_argument("max_chars_per_word must be positive");
}

Tokenizer Tokenizer::wordpiece(const std::string& vocab_path, const BasicTokenizerOptions& basic,
                               int64_t max_chars_per_word) {
  return Tokenizer(Vocab::from_file(vocab_path), basic, true, max_chars_per_word);
}

Tokenizer Tokenizer::wordpiece(Vocab vocab, const BasicTokenizerOptions& basic, int64_t max_chars_per_word) {
  return Tokenizer(std::move(vocab), basic, true, max_chars_per_word);
}

Tokenizer Tokenizer::word_level(const std::vector<std::string>& train_texts, const WordVocabOptions& options) {
  return Tokenizer(build_word_vocab(train_texts, options), options.basic, false, 100);
}

Tokenizer Tokenizer::word_level(Vocab vocab, const BasicTokenizerOptions& basic) {
  return Tokenizer(std::move(vocab), basic, false, 100);
}

std::vector<OffsetToken> Tokenizer::tokenize_with_offsets(const std::string& text) const {
  auto words = basic_tokenize_with_offsets(text, basic_);
  if (!wordpiece_) return words;
  std::vector<OffsetToken> out;
  for (const auto& w : words)
    for (auto& p : data::wordpiece(w.text, vocab_, max_chars_per_word_)) out.push_back({std::move(p), w.begin, w.end});
  return out;
}

std::vector<std::string> Tokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (auto& t : tokenize_with_offsets(text)) out.push_back(std::move(t.text));
  return out;
}

std::vector<int64_t> Tokenizer::ids(const std::vector<std::string>& tokens) const {
  std::vector<int64_t> out;
  out.reserve(tokens.size());
  for (const auto& t : tokens) out.push_back(vocab_.id(t));
  return out;
}

std::vector<int64_t> Tokenizer::ids(const std::string& text) const { return ids(tokenize(text)); }

Encoding Tokenizer::encode(const std::string& a, int64_t max_len) const {
  return encode_ids(ids(a), std::nullopt, max_len);
}

Encoding Tokenizer::encode(const std::string& a, const std::string& b, int64_t max_len, Truncation truncation) const {
  return encode_ids(ids(a), ids(b), max_len, truncation);
}

Encoding Tokenizer::encode_ids(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b, int64_t max_len,
                               Truncation truncation) const {
  const int64_t specials = b ? 3 : 2;
  if (max_len < specials)
    throw InputError("max_len " + std::to_string(max_len) + " is too short: a " + (b ? "pair" : "single text") +
                     " needs at least " + std::to_string(specials) + " positions for [CLS] and [SEP]");
  const size_t budget = static_cast<size_t>(max_len - specials);
  if (!b) {
    if (a.size() > budget) a.resize(budget);
  } else if (truncation == Truncation::kLongestFirst) {
    while (a.size() + b->size() > budget) {
      if (a.size() > b->size())
        a.pop_back();
      else
        b->pop_back();
    }
  } else {
    if (a.size() > budget) a.resize(budget);
    if (a.size() + b->size() > budget) b->resize(budget - a.size());
  }
  Encoding e;
  e.ids.reserve(static_cast<size_t>(max_len));
  e.ids.push_back(vocab_.cls_id());
  e.ids.insert(e.ids.end(), a.begin(), a.end());
  e.ids.push_back(vocab_.sep_id());
  e.segments.assign(e.ids.size(), 0);
  if (b) {
    e.b_offset = static_cast<int64_t>(e.ids.size());
    e.ids.insert(e.ids.end(), b->begin(), b->end());
    e.ids.push_back(vocab_.sep_id());
    e.segments.resize(e.ids.size(), 1);
  }
  e.length = static_cast<int64_t>(e.ids.size());
  e.ids.resize(static_cast<size_t>(max_len), vocab_.pad_id());
  e.segments.resize(static_cast<size_t>(max_len), 0);
  return e;
}

torch::Tensor pack_encodings(const std::vector<Encoding>& encodings) {
  const int64_t n = static_cast<int64_t>(encodings.size());
  const int64_t len = n ? static_cast<int64_t>(encodings[0].ids.size()) : 0;
  auto out = torch::empty({n, 2, len}, torch::kLong);
  auto acc = out.accessor<int64_t, 3>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& e = encodings[static_cast<size_t>(i)];
    if (static_cast<int64_t>(e.ids.size()) != len || static_cast<int64_t>(e.segments.size()) != len)
      throw std::invalid_argument("pack_encodings: encodings of different lengths");
    for (int64_t t = 0; t < len; ++t) {
      acc[i][0][t] = e.ids[static_cast<size_t>(t)];
      acc[i][1][t] = e.segments[static_cast<size_t>(t)];
    }
  }
  return out;
}

}  // namespace htga::data
