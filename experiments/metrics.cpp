#include "experiments/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>

#include "experiments/data/unicode.h"

namespace htga::experiments {

namespace uc = data::unicode;

namespace {

template <typename A, typename B>
void check_sizes(const char* what, const std::vector<A>& a, const std::vector<B>& b) {
  if (a.size() != b.size())
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(a.size()) + " truths but " +
                                std::to_string(b.size()) + " predictions");
  if (a.empty()) throw std::invalid_argument(std::string(what) + ": no examples");
}

std::vector<std::string> squad_tokens(const std::string& text) {
  std::vector<std::string> out;
  const std::string n = squad_normalize(text);
  size_t start = 0;
  while (start <= n.size()) {
    size_t sp = n.find(' ', start);
    if (sp == std::string::npos) sp = n.size();
    if (sp > start) out.push_back(n.substr(start, sp - start));
    start = sp + 1;
  }
  return out;
}

std::vector<std::string> effective_golds(const std::vector<std::string>& golds) {
  std::vector<std::string> out;
  for (const auto& g : golds)
    if (!squad_normalize(g).empty()) out.push_back(g);
  if (out.empty()) out.push_back("");
  return out;
}

double f1_one(const std::vector<std::string>& gold, const std::vector<std::string>& pred) {
  if (gold.empty() || pred.empty()) return gold == pred ? 1.0 : 0.0;
  std::map<std::string, int64_t> g;
  for (const auto& t : gold) ++g[t];
  int64_t same = 0;
  for (const auto& t : pred) {
    auto it = g.find(t);
    if (it != g.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(pred.size());
  const double recall = static_cast<double>(same) / static_cast<double>(gold.size());
  return 2 * precision * recall / (precision + recall);
}

}  // namespace

double accuracy(const std::vector<int64_t>& truth, const std::vector<int64_t>& prediction) {
  check_sizes("accuracy", truth, prediction);
  int64_t right = 0;
  for (size_t i = 0; i < truth.size(); ++i) right += truth[i] == prediction[i];
  return static_cast<double>(right) / static_cast<double>(truth.size());
}

double matthews_corrcoef(const std::vector<int64_t>& truth, const std::vector<int64_t>& prediction) {
  check_sizes("matthews_corrcoef", truth, prediction);
  std::map<int64_t, double> t, p;  // counts per class
  double correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    t[truth[i]] += 1;
    p[prediction[i]] += 1;
    correct += truth[i] == prediction[i];
  }
  const double s = static_cast<double>(truth.size());
  double tp = 0, pp = 0, tt = 0;
  for (const auto& [k, n] : t) {
    tt += n * n;
    auto it = p.find(k);
    if (it != p.end()) tp += n * it->second;
  }
  for (const auto& [k, n] : p) pp += n * n;
  const double cov_ytyp = correct * s - tp, cov_ypyp = s * s - pp, cov_ytyt = s * s - tt;
  if (cov_ypyp * cov_ytyt == 0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

double binary_f1(const std::vector<int64_t>& truth, const std::vector<int64_t>& prediction, int64_t positive) {
  check_sizes("binary_f1", truth, prediction);
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    const bool t = truth[i] == positive, p = prediction[i] == positive;
    tp += t && p;
    fp += !t && p;
    fn += t && !p;
  }
  const double denominator = 2 * tp + fp + fn;
  return denominator == 0 ? 0.0 : 2 * tp / denominator;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("pearson", x, y);
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;  // mean of i+1..j+1
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("spearman", x, y);
  return pearson(average_ranks(x), average_ranks(y));
}

std::string squad_normalize(const std::string& text) {
  // lower(), then remove_punc (string.punctuation: ASCII only), then remove_articles
  // (\b(a|an|the)\b -> " "), then white_space_fix (" ".join(text.split())).
  std::vector<char32_t> cps;
  for (const auto& c : uc::decode(uc::lower(text))) {
    const char32_t cp = c.cp;
    const bool ascii_punct =
        (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
    if (!ascii_punct) cps.push_back(cp);
  }
  std::vector<char32_t> no_articles;
  for (size_t i = 0; i < cps.size();) {
    if (!uc::is_word_char(cps[i])) {
      no_articles.push_back(cps[i++]);
      continue;
    }
    size_t j = i;
    while (j < cps.size() && uc::is_word_char(cps[j])) ++j;
    const std::u32string word(cps.begin() + static_cast<std::ptrdiff_t>(i),
                              cps.begin() + static_cast<std::ptrdiff_t>(j));
    if (word == U"a" || word == U"an" || word == U"the")
      no_articles.push_back(U' ');
    else
      no_articles.insert(no_articles.end(), word.begin(), word.end());
    i = j;
  }
  std::string out;
  bool pending_space = false;
  for (char32_t cp : no_articles) {
    if (uc::is_python_space(cp)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    uc::append(out, cp);
  }
  return out;
}

double squad_exact_match(const std::string& prediction, const std::vector<std::string>& golds) {
  const std::string p = squad_normalize(prediction);
  double best = 0;
  for (const auto& g : effective_golds(golds)) best = std::max(best, squad_normalize(g) == p ? 1.0 : 0.0);
  return best;
}

double squad_f1(const std::string& prediction, const std::vector<std::string>& golds) {
  const auto p = squad_tokens(prediction);
  double best = 0;
  for (const auto& g : effective_golds(golds)) best = std::max(best, f1_one(squad_tokens(g), p));
  return best;
}

SquadScores squad_scores(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& golds) {
  check_sizes("squad_scores", golds, predictions);
  SquadScores s;
  for (size_t i = 0; i < predictions.size(); ++i) {
    s.exact_match += squad_exact_match(predictions[i], golds[i]);
    s.f1 += squad_f1(predictions[i], golds[i]);
  }
  s.total = static_cast<int64_t>(predictions.size());
  s.exact_match *= 100.0 / static_cast<double>(s.total);
  s.f1 *= 100.0 / static_cast<double>(s.total);
  return s;
}

double perplexity(double total_nll, int64_t tokens) {
  if (tokens < 1) throw std::invalid_argument("perplexity: no tokens");
  return std::exp(total_nll / static_cast<double>(tokens));
}

}  // namespace htga::experiments
