#pragma once
// SQuAD v1.1 and v2.0 (Rajpurkar et al. 2016, 2018) read from the official JSON files, and the
// maps between an answer's characters and token positions that span heads train on and predict.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/data/tokenizer.h"

namespace htga::data {

struct SquadAnswer {
  std::string text;
  int64_t char_start = 0;   // answer_start as the file gives it: code points into the context
  int64_t byte_start = -1;  // the same in UTF-8 bytes; -1 when the text is not there in the context
};

struct SquadQuestion {
  std::string id, question;
  int64_t context = 0;               // index into SquadData::contexts
  std::vector<SquadAnswer> answers;  // empty exactly for v2.0's unanswerable questions
  bool is_impossible = false;        // v2.0; plausible_answers are ignored
};

struct SquadData {
  std::string version;  // the file's "version" ("1.1", "v2.0")
  std::vector<std::string> contexts;
  std::vector<SquadQuestion> questions;
  int64_t answers = 0;             // answers read, over all questions
  int64_t mismatched_answers = 0;  // answers whose text is not at answer_start in the context
  int64_t impossible = 0;          // questions marked is_impossible
};

/// Reads a SQuAD JSON file (data -> paragraphs -> context, qas -> id, question, answers
/// [{text, answer_start}], is_impossible). Throws InputError naming the file and the JSON path of
/// a missing or mistyped field, or a question that has no answers and is not marked impossible.
SquadData read_squad(const std::string& path);

/// The byte offset of code point `char_index` of UTF-8 `text` (text.size() at the end); nullopt
/// past the end.
std::optional<size_t> byte_offset(const std::string& text, int64_t char_index);

/// The first and last index of the tokens overlapping the bytes [begin, end) of the text they
/// came from; nullopt when none does (e.g. the span was cut off).
std::optional<std::pair<int64_t, int64_t>> token_span(const std::vector<OffsetToken>& tokens, size_t begin, size_t end);

/// The text from the start of token `first` to the end of token `last` in `text` (the original,
/// not the normalised tokens), as a prediction; "" when the span is not valid.
std::string span_text(const std::string& text, const std::vector<OffsetToken>& tokens, int64_t first, int64_t last);

/// One question and its context packed as [CLS] question [SEP] context [SEP] for a span head.
struct SquadFeature {
  Encoding encoding;
  int64_t start = 0, end = 0;          // answer positions in the encoding; 0 ([CLS]) when there is
                                       // no answer or the context was cut before its end
  std::vector<OffsetToken> positions;  // per position: its context token (text and bytes) or
                                       // empty with begin == end == 0 outside the context
  bool answer_cut = false;             // an answer existed but the truncated context lost it
};

/// Packs a question and context (context cut first, Truncation::kOnlySecond). `answer` is the
/// answer's bytes [begin, end) in the context, or nullopt for an unanswerable question.
SquadFeature encode_squad(const Tokenizer& tokenizer, const std::string& question, const std::string& context,
                          std::optional<std::pair<size_t, size_t>> answer, int64_t max_len);

/// The context text a predicted (start, end) of a feature names; "" for the no-answer position
/// 0, for end < start, or positions outside the context.
std::string feature_answer_text(const SquadFeature& feature, const std::string& context, int64_t start, int64_t end);

}  // namespace htga::data
