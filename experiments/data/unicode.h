#pragma once
// The few Unicode facts the text tools need, without ICU: UTF-8 decoding with byte offsets and
// the character classes of BERT's basic tokenizer (google-research/bert, tokenization.py) and of
// Python's str.lower()/str.split() as the SQuAD evaluation script uses them.
//
// Coverage is deliberate rather than complete: case mapping and accent stripping know Latin-1,
// Latin Extended-A, basic Greek and Cyrillic (what English benchmarks contain); other scripts pass
// through unchanged.

#include <cstddef>
#include <string>
#include <vector>

namespace htga::data::unicode {

/// One code point of a UTF-8 string and the bytes [begin, end) it occupies there.
struct CodePoint {
  char32_t cp = 0;
  size_t begin = 0, end = 0;
};

/// Decodes UTF-8; each byte of a malformed sequence becomes U+FFFD (one code point per byte).
std::vector<CodePoint> decode(const std::string& text);

/// Appends the UTF-8 encoding of `cp`.
void append(std::string& out, char32_t cp);

/// Number of code points (what Python's len() counts), malformed bytes counting one each.
size_t length(const std::string& text);

/// Lower case of a code point (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic).
char32_t to_lower(char32_t cp);

/// The base letter of an accented Latin letter as NFD followed by dropping combining marks gives
/// it; 0 for a combining mark (U+0300..U+036F), which is to be dropped; `cp` itself otherwise.
char32_t strip_accent(char32_t cp);

/// BERT's _is_whitespace: space, \t, \n, \r and the space separators (Zs).
bool is_whitespace(char32_t cp);

/// BERT's _is_control: Cc and Cf characters other than \t, \n, \r.
bool is_control(char32_t cp);

/// BERT's _is_punctuation: every non-alphanumeric printable ASCII character, and the Unicode
/// punctuation (P*) blocks of Latin-1, General Punctuation, CJK symbols and full-width forms.
bool is_punctuation(char32_t cp);

/// What Python's str.split() splits on (str.isspace()).
bool is_python_space(char32_t cp);

/// Python's `\w` in a Unicode regex, approximated: ASCII letters, digits and '_', and any
/// non-ASCII code point that is neither whitespace, control nor punctuation.
bool is_word_char(char32_t cp);

/// Lower-cases a whole UTF-8 string with to_lower.
std::string lower(const std::string& text);

}  // namespace htga::data::unicode
