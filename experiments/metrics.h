#pragma once
// Evaluation metrics exactly as the benchmarks define them: GLUE's (scikit-learn's and scipy's
// definitions), SQuAD's official evaluate-v2.0.py, and perplexity. No LibTorch.

#include <cstdint>
#include <string>
#include <vector>

namespace htga::experiments {

/// Fraction of positions where `truth` and `prediction` agree. Throws std::invalid_argument on
/// different sizes (all functions below do) and on empty inputs.
double accuracy(const std::vector<int64_t>& truth, const std::vector<int64_t>& prediction);

/// Matthews correlation (CoLA), sklearn.metrics.matthews_corrcoef: with the confusion matrix C,
/// t_k = sum_j C[k][j] (true counts), p_k = sum_i C[i][k] (predicted counts), c = trace(C), s = N,
///   MCC = (c s - sum_k t_k p_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2)),
/// which for two classes is (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)); 0 when the
/// denominator is 0 (one class only predicted or present).
double matthews_corrcoef(const std::vector<int64_t>& truth, const std::vector<int64_t>& prediction);

/// F1 of class `positive` (MRPC, QQP): 2 TP / (2 TP + FP + FN); 0 when TP + FP + FN = 0, as
/// scikit-learn's default.
double binary_f1(const std::vector<int64_t>& truth, const std::vector<int64_t>& prediction, int64_t positive = 1);

/// Pearson's r (STS-B); NaN when either input is constant (scipy.stats.pearsonr).
double pearson(const std::vector<double>& x, const std::vector<double>& y);

/// Ranks 1..n, ties sharing the mean of their ranks (scipy.stats.rankdata(method="average")).
std::vector<double> average_ranks(const std::vector<double>& x);

/// Spearman's rho (STS-B): Pearson's r of the average ranks (scipy.stats.spearmanr).
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// SQuAD's normalize_answer: lower-case, drop ASCII punctuation, drop the whole words a, an,
/// the, collapse whitespace to single spaces.
std::string squad_normalize(const std::string& text);

/// Exact match and token F1 of `prediction` against the gold answers, each the maximum over the
/// golds (evaluate-v2.0.py). Golds that normalise to "" are dropped; with none left the gold is
/// "" (an unanswerable v2.0 question), which only the empty prediction matches, scoring 1.
double squad_exact_match(const std::string& prediction, const std::vector<std::string>& golds);
double squad_f1(const std::string& prediction, const std::vector<std::string>& golds);

struct SquadScores {
  double exact_match = 0;  // percent, as the official script prints it
  double f1 = 0;           // percent
  int64_t total = 0;
};

/// Mean exact match and F1 over questions, in percent.
SquadScores squad_scores(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& golds);

/// exp(total_nll / tokens): perplexity from the summed token negative log-likelihood (nats).
double perplexity(double total_nll, int64_t tokens);

}  // namespace htga::experiments
