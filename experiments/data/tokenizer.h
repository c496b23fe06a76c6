#pragma once
// Text to token ids for the transformer models: BERT's basic tokenizer and WordPiece
// (google-research/bert, tokenization.py) over a vocab.txt, or a word-level vocabulary built from
// the training texts; sentence pairs packed as [CLS] a [SEP] b [SEP] with segment ids.

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace htga::data {

inline constexpr const char* kPadToken = "[PAD]";
inline constexpr const char* kUnkToken = "[UNK]";
inline constexpr const char* kClsToken = "[CLS]";
inline constexpr const char* kSepToken = "[SEP]";
inline constexpr const char* kMaskToken = "[MASK]";

/// A token and the bytes [begin, end) of the original text it came from (a word piece carries
/// the span of its whole word, as BERT's SQuAD code maps pieces back to words).
struct OffsetToken {
  std::string text;
  size_t begin = 0, end = 0;
};

struct BasicTokenizerOptions {
  bool lower_case = true;     // lower-case (uncased BERT models); false keeps the case
  bool strip_accents = true;  // "é" -> "e", as uncased BERT does; false for cased models
};

/// BERT's BasicTokenizer: drops NUL, U+FFFD and control characters, splits on whitespace, lower-
/// cases and strips accents as the options say, and makes every punctuation character a token of
/// its own. CJK ideographs are not split apart.
std::vector<OffsetToken> basic_tokenize_with_offsets(const std::string& text,
                                                     const BasicTokenizerOptions& options = {});
std::vector<std::string> basic_tokenize(const std::string& text, const BasicTokenizerOptions& options = {});

/// Tokens and their ids. [PAD] is always id 0 (the models mask id 0 as padding); [UNK], [CLS] and
/// [SEP] are always present.
class Vocab {
 public:
  /// A BERT vocab.txt: one token per line, the id is the line number from 0. Throws InputError
  /// when the file is missing or [PAD] is not on the first line or [UNK]/[CLS]/[SEP] are absent.
  static Vocab from_file(const std::string& path);
  /// Ids in the order given; throws std::invalid_argument on the conditions from_file checks.
  static Vocab from_tokens(std::vector<std::string> tokens, const std::string& what = "vocabulary");

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  /// The id of `token`, or unk_id() when it is not in the vocabulary.
  int64_t id(const std::string& token) const;
  std::optional<int64_t> find(const std::string& token) const;
  bool contains(const std::string& token) const { return index_.count(token) > 0; }
  const std::string& token(int64_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  const std::vector<std::string>& tokens() const { return tokens_; }

  int64_t pad_id() const { return 0; }
  int64_t unk_id() const { return unk_; }
  int64_t cls_id() const { return cls_; }
  int64_t sep_id() const { return sep_; }
  int64_t mask_id() const { return mask_; }  // -1 when the vocabulary has no [MASK]

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> index_;
  int64_t unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
};

struct WordVocabOptions {
  int64_t min_count = 1;        // words seen fewer times in the training texts become [UNK]
  int64_t max_vocab = 0;        // most words kept besides the special tokens (0 = no limit)
  bool mask_token = false;      // also reserve [MASK] (id 4)
  BasicTokenizerOptions basic;  // how the texts are split into words
};

/// A word-level vocabulary of `texts` split by basic_tokenize: [PAD]=0, [UNK]=1, [CLS]=2,
/// [SEP]=3 ([MASK]=4), then the words by count (descending), ties by byte string (ascending),
/// so the ids depend only on the texts. Throws std::invalid_argument for min_count < 1 or
/// max_vocab < 0.
Vocab build_word_vocab(const std::vector<std::string>& texts, const WordVocabOptions& options = {});

/// WordPiece of one basic token: greedy longest-match-first, pieces after the first prefixed
/// "##"; {[UNK]} when some position matches nothing or the word has more than
/// `max_chars_per_word` code points.
std::vector<std::string> wordpiece(const std::string& word, const Vocab& vocab, int64_t max_chars_per_word = 100);

/// One example packed for the encoder.
struct Encoding {
  std::vector<int64_t> ids;       // max_len ids: [CLS] a [SEP] (b [SEP]), then [PAD] = 0
  std::vector<int64_t> segments;  // 0 over [CLS] a [SEP], 1 over b [SEP], 0 over the padding
  int64_t length = 0;             // positions before the padding
  int64_t b_offset = -1;          // position of b's first token (-1 for a single text)
};

/// How a pair is cut to max_len. Longest-first is BERT's _truncate_seq_pair: drop the last token
/// of the longer text (of b on a tie) until the pair fits. Only-second cuts b (a SQuAD context)
/// first and a only when a alone does not fit.
enum class Truncation { kLongestFirst, kOnlySecond };

class Tokenizer {
 public:
  /// WordPiece over a BERT vocab.txt.
  static Tokenizer wordpiece(const std::string& vocab_path, const BasicTokenizerOptions& basic = {},
                             int64_t max_chars_per_word = 100);
  static Tokenizer wordpiece(Vocab vocab, const BasicTokenizerOptions& basic = {}, int64_t max_chars_per_word = 100);
  /// Words of the basic tokenizer, with a vocabulary built from `train_texts`.
  static Tokenizer word_level(const std::vector<std::string>& train_texts, const WordVocabOptions& options = {});
  static Tokenizer word_level(Vocab vocab, const BasicTokenizerOptions& basic = {});

  bool is_wordpiece() const { return wordpiece_; }
  const Vocab& vocab() const { return vocab_; }

  /// Tokens of `text` (word pieces, or words; a word-level token outside the vocabulary is
  /// returned as itself and becomes [UNK] in ids()).
  std::vector<std::string> tokenize(const std::string& text) const;
  std::vector<OffsetToken> tokenize_with_offsets(const std::string& text) const;
  std::vector<int64_t> ids(const std::string& text) const;
  std::vector<int64_t> ids(const std::vector<std::string>& tokens) const;

  /// [CLS] a [SEP] cut and padded to max_len (>= 2). Throws InputError for a smaller max_len.
  Encoding encode(const std::string& a, int64_t max_len) const;
  /// [CLS] a [SEP] b [SEP] cut and padded to max_len (>= 3).
  Encoding encode(const std::string& a, const std::string& b, int64_t max_len,
                  Truncation truncation = Truncation::kLongestFirst) const;
  /// The same from ids already tokenized (b absent for a single text); the vectors are cut in place.
  Encoding encode_ids(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b, int64_t max_len,
                      Truncation truncation = Truncation::kLongestFirst) const;

 private:
  Tokenizer(Vocab vocab, BasicTokenizerOptions basic, bool wordpiece, int64_t max_chars_per_word);
  Vocab vocab_;
  BasicTokenizerOptions basic_;
  bool wordpiece_ = false;
  int64_t max_chars_per_word_ = 100;
};

/// Encodings as one int64 tensor [N, 2, L]: [:, 0] the ids, [:, 1] the segment ids (the packed
/// input the transformer models take). All encodings must have the same length.
torch::Tensor pack_encodings(const std::vector<Encoding>& encodings);

}  // namespace htga::data
