#include "experiments/data/squad.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "experiments/data/unicode.h"
#include "experiments/error.h"

namespace htga::data {

using nlohmann::json;

namespace {

/// Field `key` of object `j` (at JSON pointer `where`) with the type `want` names.
const json& field(const std::string& path, const json& j, const std::string& where, const std::string& key,
                  json::value_t want, const char* want_name) {
  if (!j.is_object()) throw InputError(path + ": " + where + ": expected an object");
  auto it = j.find(key);
  if (it == j.end()) throw InputError(path + ": " + where + ": no \"" + key + "\"");
  const bool ok = want == json::value_t::number_integer ? it->is_number_integer() : it->type() == want;
  if (!ok) throw InputError(path + ": " + where + "/" + key + ": expected " + want_name);
  return *it;
}

}  // namespace

std::optional<size_t> byte_offset(const std::string& text, int64_t char_index) {
  if (char_index < 0) return std::nullopt;
  const auto cps = unicode::decode(text);
  if (static_cast<size_t>(char_index) > cps.size()) return std::nullopt;
  if (static_cast<size_t>(char_index) == cps.size()) return text.size();
  return cps[static_cast<size_t>(char_index)].begin;
}

SquadData read_squad(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the SQuAD file");
  json root;
  try {
    root = json::parse(in);
  } catch (const json::parse_error& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
  SquadData d;
  if (root.is_object() && root.contains("version") && root["version"].is_string())
    d.version = root["version"].get<std::string>();
  const json& data = field(path, root, "", "data", json::value_t::array, "an array");
  for (size_t ai = 0; ai < data.size(); ++ai) {
    const std::string wa = "/data/" + std::to_string(ai);
    const json& paragraphs = field(path, data[ai], wa, "paragraphs", json::value_t::array, "an array");
    for (size_t pi = 0; pi < paragraphs.size(); ++pi) {
      const std::string wp = wa + "/paragraphs/" + std::to_string(pi);
      const auto& p = paragraphs[pi];
      const int64_t context_index = static_cast<int64_t>(d.contexts.size());
      d.contexts.push_back(field(path, p, wp, "context", json::value_t::string, "a string").get<std::string>());
      const std::string& context = d.contexts.back();
      const auto cps = unicode::decode(context);
      const json& qas = field(path, p, wp, "qas", json::value_t::array, "an array");
      for (size_t qi = 0; qi < qas.size(); ++qi) {
        const std::string wq = wp + "/qas/" + std::to_string(qi);
        const auto& qa = qas[qi];
        SquadQuestion q;
        q.context = context_index;
        q.id = field(path, qa, wq, "id", json::value_t::string, "a string").get<std::string>();
        q.question = field(path, qa, wq, "question", json::value_t::string, "a string").get<std::string>();
        if (qa.contains("is_impossible"))
          q.is_impossible = field(path, qa, wq, "is_impossible", json::value_t::boolean, "true or false").get<bool>();
        const json& answers = field(path, qa, wq, "answers", json::value_t::array, "an array");
        for (size_t k = 0; k < answers.size(); ++k) {
          const std::string wk = wq + "/answers/" + std::to_string(k);
          SquadAnswer a;
          a.text = field(path, answers[k], wk, "text", json::value_t::string, "a string").get<std::string>();
          a.char_start =
              field(path, answers[k], wk, "answer_start", json::value_t::number_integer, "an integer").get<int64_t>();
          if (a.char_start >= 0 && static_cast<size_t>(a.char_start) <= cps.size()) {
            const size_t b = static_cast<size_t>(a.char_start) < cps.size() ? cps[a.char_start].begin : context.size();
            if (context.compare(b, a.text.size(), a.text) == 0) a.byte_start = static_cast<int64_t>(b);
          }
          if (a.byte_start < 0) ++d.mismatched_answers;
          q.answers.push_back(std::move(a));
        }
        if (q.is_impossible && !q.answers.empty())
          throw InputError(path + ": " + wq + ": question \"" + q.id + "\" is marked is_impossible but has answers");
        if (!q.is_impossible && q.answers.empty())
          throw InputError(path + ": " + wq + ": question \"" + q.id + "\" has no answers and is not is_impossible");
        d.answers += static_cast<int64_t>(q.answers.size());
        d.impossible += q.is_impossible;
        d.questions.push_back(std::move(q));
      }
    }
  }
  return d;
}

std::optional<std::pair<int64_t, int64_t>> token_span(const std::vector<OffsetToken>& tokens, size_t begin,
                                                      size_t end) {
  int64_t first = -1, last = -1;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].end > begin && tokens[i].begin < end) {
      if (first < 0) first = static_cast<int64_t>(i);
      last = static_cast<int64_t>(i);
    }
  }
  if (first < 0) return std::nullopt;
  return std::make_pair(first, last);
}

std::string span_text(const std::string& text, const std::vector<OffsetToken>& tokens, int64_t first, int64_t last) {
  if (first < 0 || last < first || last >= static_cast<int64_t>(tokens.size())) return "";
  const size_t b = tokens[static_cast<size_t>(first)].begin, e = tokens[static_cast<size_t>(last)].end;
  if (e < b || e > text.size()) return "";
  return text.substr(b, e - b);
}

SquadFeature encode_squad(const Tokenizer& tokenizer, const std::string& question, const std::string& context,
                          std::optional<std::pair<size_t, size_t>> answer, int64_t max_len) {
  const auto context_tokens = tokenizer.tokenize_with_offsets(context);
  std::vector<std::string> texts;
  for (const auto& t : context_tokens) texts.push_back(t.text);
  SquadFeature f;
  f.encoding = tokenizer.encode_ids(tokenizer.ids(question), tokenizer.ids(texts), max_len, Truncation::kOnlySecond);
  const int64_t offset = f.encoding.b_offset;
  const int64_t kept = f.encoding.length - offset - 1;  // context tokens before the final [SEP]
  f.positions.assign(static_cast<size_t>(max_len), OffsetToken{});
  for (int64_t i = 0; i < kept; ++i)
    f.positions[static_cast<size_t>(offset + i)] = context_tokens[static_cast<size_t>(i)];
  if (answer) {
    const auto span = token_span(context_tokens, answer->first, answer->second);
    if (span && span->second < kept) {
      f.start = offset + span->first;
      f.end = offset + span->second;
    } else {
      f.answer_cut = true;
    }
  }
  return f;
}

std::string feature_answer_text(const SquadFeature& feature, const std::string& context, int64_t start, int64_t end) {
  const int64_t n = static_cast<int64_t>(feature.positions.size());
  if (start <= 0 || end < start || end >= n) return "";
  const auto& s = feature.positions[static_cast<size_t>(start)];
  const auto& e = feature.positions[static_cast<size_t>(end)];
  if (s.text.empty() || e.text.empty() || e.end < s.begin || e.end > context.size()) return "";
  return context.substr(s.begin, e.end - s.begin);
}

}  // namespace htga::data
