#pragma once
// Language-modelling corpora: one plain-text file split into train/valid/test by contiguous
// fractions of its lines, or a WikiText-style folder (wiki.train.tokens, wiki.valid.tokens,
// wiki.test.tokens), read at character or word level into streams of token ids.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace htga::data {

enum class LmLevel {
  kChar,  // every code point a token ("\n" included)
  kWord,  // whitespace-separated words, each line followed by <eos> (as PyTorch's
          // examples/word_language_model reads WikiText)
};

inline constexpr const char* kLmUnk = "<unk>";
inline constexpr const char* kLmEos = "<eos>";

/// "char" or "word"; throws InputError naming `what` otherwise.
LmLevel parse_lm_level(const std::string& text, const std::string& what = "level");

struct LmOptions {
  LmLevel level = LmLevel::kWord;
  double valid_fraction = 0.05;  // of a single file's lines (contiguous, after train)
  double test_fraction = 0.05;   // of a single file's lines (contiguous, at the end)
  int64_t min_count = 1;         // training tokens seen fewer times become <unk>
  int64_t max_vocab = 0;         // most tokens kept besides <unk>/<eos> (0 = no limit)
};

struct LmCorpus {
  LmLevel level = LmLevel::kWord;
  std::vector<std::string> vocab;           // id -> token: <unk> = 0, <eos> = 1 (word level), then by
                                            // training count (descending), ties by byte string
  std::vector<int64_t> train, valid, test;  // id streams
  int64_t unk_id = 0;
  int64_t eos_id = -1;                                             // -1 at character level
  int64_t train_unknown = 0, valid_unknown = 0, test_unknown = 0;  // tokens mapped to <unk>
  std::vector<std::string> files;                                  // the files read
};

/// The tokens of `text` at `level` (word level: each line's words, then <eos>).
std::vector<std::string> lm_tokens(const std::string& text, LmLevel level);

/// Reads `path`: a WikiText-style folder or one text file. Throws InputError naming the path when
/// it is neither, a file is missing or a split would be empty.
LmCorpus read_lm_corpus(const std::string& path, const LmOptions& options = {});

/// Consecutive windows of `length` + 1 ids (inputs are [:, :-1], targets [:, 1:]), starting every
/// `stride` ids (0 = `length`, so each id is predicted once): int64 [N, length + 1], the ragged
/// end dropped. Throws std::invalid_argument for length < 1.
torch::Tensor make_windows(const std::vector<int64_t>& stream, int64_t length, int64_t stride = 0);

}  // namespace htga::data
