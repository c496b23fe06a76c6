// Metrics against values worked out by hand from their definitions (scikit-learn, scipy,
// SQuAD's evaluate-v2.0.py).

#include <catch2/catch.hpp>
#include <cmath>

#include "experiments/metrics.h"

using namespace htga::experiments;

TEST_CASE("accuracy, binary F1 and Matthews correlation on a confusion matrix", "[text]") {
  // TP = 3, FN = 1, FP = 1, TN = 3.
  const std::vector<int64_t> truth{1, 1, 1, 0, 0, 0, 1, 0};
  const std::vector<int64_t> pred{1, 0, 1, 0, 1, 0, 1, 0};
  CHECK(accuracy(truth, pred) == Approx(0.75));
  CHECK(binary_f1(truth, pred) == Approx(6.0 / 8.0));    // 2TP / (2TP + FP + FN)
  CHECK(matthews_corrcoef(truth, pred) == Approx(0.5));  // (9 - 1) / sqrt(4 * 4 * 4 * 4)
  CHECK(matthews_corrcoef(pred, pred) == Approx(1.0));
  std::vector<int64_t> flipped;
  for (auto p : pred) flipped.push_back(1 - p);
  CHECK(matthews_corrcoef(truth, flipped) == Approx(-0.5));
  // Undefined (one class predicted): 0, as scikit-learn.
  CHECK(matthews_corrcoef(truth, std::vector<int64_t>(8, 1)) == 0.0);
  CHECK(binary_f1({0, 0}, {0, 0}) == 0.0);
  CHECK(binary_f1(truth, pred, /*positive=*/0) == Approx(0.75));
  // Three classes: t = (2, 2, 2), p = (2, 3, 1), 5 correct of 6:
  // (5*6 - 12) / sqrt((36 - 14) (36 - 12)) = 18 / sqrt(528).
  CHECK(matthews_corrcoef({0, 1, 2, 0, 1, 2}, {0, 1, 1, 0, 1, 2}) == Approx(18.0 / std::sqrt(528.0)));
  CHECK_THROWS_AS(accuracy({1}, {1, 0}), std::invalid_argument);
}

TEST_CASE("Pearson and Spearman with ties use average ranks as scipy", "[text]") {
  // dx = (-1.5, -.5, .5, 1.5), dy = (-3, -1, 0, 4): 11 / sqrt(5 * 26).
  CHECK(pearson({1, 2, 3, 4}, {2, 4, 5, 9}) == Approx(11.0 / std::sqrt(130.0)));
  CHECK(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  CHECK(average_ranks({10, 20, 20, 5, 20}) == std::vector<double>{2, 4, 4, 1, 4});
  // ranks (1, 2.5, 2.5, 4, 5) and (1, 4, 2.5, 2.5, 5): 7.25 / 9.5.
  CHECK(spearman({1, 2, 2, 3, 4}, {1, 3, 2, 2, 5}) == Approx(7.25 / 9.5));
  CHECK(spearman({1, 2, 3}, {10, 100, 1000}) == Approx(1.0));
  CHECK(spearman({1, 2, 3}, {3, 2, 1}) == Approx(-1.0));
}

TEST_CASE("SQuAD normalisation: case, punctuation, articles as whole words, whitespace", "[text]") {
  CHECK(squad_normalize("The Cat's   hat!") == "cats hat");
  CHECK(squad_normalize("An apple, a day") == "apple day");
  CHECK(squad_normalize("theater anthem") == "theater anthem");
  CHECK(squad_normalize("A-team") == "ateam");  // the hyphen goes first, so "a" is not a word
  CHECK(squad_normalize("  (the)  ") == "");
  CHECK(squad_normalize("Caf\u00C9 \u00ABthe\u00BB") == "caf\u00e9 \u00ab \u00bb");  // non-ASCII punctuation stays
}

TEST_CASE("SQuAD exact match and F1: max over golds, v2.0 no-answer", "[text]") {
  CHECK(squad_exact_match("the Eiffel Tower", {"Eiffel Tower"}) == 1.0);
  CHECK(squad_exact_match("Eiffel Tower.", {"Paris", "eiffel tower"}) == 1.0);
  CHECK(squad_exact_match("Tower", {"Eiffel Tower"}) == 0.0);
  // pred in eiffel tower in paris (5 tokens); gold 1 shares 2 of 2: P 2/5, R 1 -> 4/7.
  CHECK(squad_f1("in the Eiffel Tower in Paris", {"Eiffel Tower", "Paris"}) == Approx(4.0 / 7.0));
  // Repeated tokens count with multiplicity: x y y vs y y y z shares 2: P 2/3, R 1/2 -> 4/7.
  CHECK(squad_f1("x y y", {"y y y z"}) == Approx(4.0 / 7.0));
  CHECK(squad_f1("nothing shared", {"Eiffel Tower"}) == 0.0);
  // Unanswerable (no golds, or golds that normalise to nothing): only "" scores, and scores 1.
  CHECK(squad_exact_match("", {}) == 1.0);
  CHECK(squad_f1("", {}) == 1.0);
  CHECK(squad_f1("the", {"an"}) == 1.0);
  CHECK(squad_exact_match("Paris", {}) == 0.0);
  CHECK(squad_f1("Paris", {}) == 0.0);
  CHECK(squad_f1("", {"Paris"}) == 0.0);
  CHECK(squad_exact_match("paris", {"the", "Paris"}) == 1.0);

  auto s = squad_scores({"Eiffel Tower", "in Paris", ""}, {{"the Eiffel Tower"}, {"Paris"}, {}});
  CHECK(s.total == 3);
  CHECK(s.exact_match == Approx(200.0 / 3.0));
  CHECK(s.f1 == Approx(100.0 * (1.0 + 2.0 / 3.0 + 1.0) / 3.0));  // "in paris" vs "paris": P 1/2, R 1
}

TEST_CASE("perplexity is exp of the mean token NLL", "[text]") {
  CHECK(perplexity(4 * std::log(2.0), 4) == Approx(2.0));
  CHECK(perplexity(0.0, 10) == 1.0);
  CHECK_THROWS_AS(perplexity(1.0, 0), std::invalid_argument);
}
