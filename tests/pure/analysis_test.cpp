#include "experiments/analysis/analysis.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "experiments/analysis/stats.h"
#include "experiments/error.h"
#include "report_db.h"
#include "storage/query.h"
#include "storage/sqlite.h"
#include "storage/store.h"

using htga::analysis::analyse;
using htga::analysis::AnalysisOptions;
using htga::analysis::ReportGroup;
using htga::analysis::ReportRow;
using htga::storage::Store;
using htga::test::Db;

namespace {

const ReportGroup& group_of(const std::vector<ReportGroup>& groups, const std::string& dataset) {
  for (const auto& g : groups)
    if (g.dataset == dataset) return g;
  FAIL("no group of " << dataset);
  throw std::logic_error("unreachable");
}

const ReportRow& selected_row(const ReportGroup& g, const std::string& optimizer) {
  for (const auto& r : g.rows)
    if (r.optimizer == optimizer && r.selected) return r;
  FAIL("no selected row for " << g.dataset << " " << optimizer);
  throw std::logic_error("unreachable");
}

bool has(const std::vector<std::string>& lines, const std::string& part) {
  for (const auto& l : lines)
    if (l.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("each family's configuration is selected by validation, not test", "[analysis]") {
  Db db;
  Store s(db.path);
  const auto groups = analyse(s, AnalysisOptions{});
  REQUIRE(groups.size() == 3);
  const ReportGroup& fm = group_of(groups, "fashion-mnist");
  CHECK(fm.label == R"(fashion-mnist/mlp  dataset {"train_size":512,"val_size":100}  model {"hidden":[32]})");
  CHECK(fm.metric == "acc");
  REQUIRE(fm.rows.size() == 2);
  const ReportRow& base = fm.rows[0];  // the baseline family first
  CHECK(base.optimizer == "sgd-clip");
  CHECK(base.config["optimizer"]["lr"] == 0.1);  // lr=0.05 has the better test accuracy
  CHECK(base.baseline);
  CHECK(base.selected_by == "val");
  CHECK(base.label == "lr=0.1");
  CHECK(base.val_mean == Approx(0.80));
  const ReportRow& htga = selected_row(fm, "htga");
  CHECK(htga.config["optimizer"]["beta"] == 1.0);  // beta=0.5: best test; beta=2: a diverged seed
  CHECK(htga.label == "beta=1.0 lr=0.1");
  // A configuration is the config without its seed and the settings outside the cell key.
  CHECK_FALSE(htga.config["train"].contains("device"));
  CHECK(htga.config["train"]["epochs"] == 1);
  CHECK_FALSE(htga.config.contains("seed"));

  // Test accuracy of the baseline: 0.80..0.84, by hand (see stats_test).
  CHECK(base.n == 5);
  CHECK(base.runs == 5);
  CHECK(base.seeds == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(base.mean == Approx(0.82));
  CHECK(base.std == Approx(0.015811388300841858));
  CHECK(base.ci_low == Approx(0.8003675683852245));
  CHECK(base.ci_high == Approx(0.8396324316147756));
  CHECK(std::isnan(base.diff));
  CHECK(std::isnan(base.p_t));
  CHECK(std::isnan(base.alpha_hat_median));  // no steps logged
  CHECK(base.summary.empty());

  // htga - baseline, paired by seed: differences 0.01..0.05.
  CHECK(htga.n == 5);
  CHECK(htga.diff_test == "paired");
  CHECK(htga.n_pairs == 5);
  CHECK(htga.diff == Approx(0.03));
  const double half = 2.7764451051977987 * 0.015811388300841858 / std::sqrt(5.0);
  CHECK(htga.diff_ci_low == Approx(0.03 - half));
  CHECK(htga.diff_ci_high == Approx(0.03 + half));
  CHECK(htga.p_t == Approx(0.013235599563682768).epsilon(1e-6));
  CHECK(htga.p_wilcoxon == Approx(0.0625));
  CHECK(htga.alpha_hat_median == Approx(1.3));
  CHECK(htga.gen_gap == Approx(0.1));
  CHECK(htga.time_s == Approx(12));
  CHECK(htga.summary == "htga beats sgd-clip on fashion-mnist/mlp by +3.00 points [1.04, 4.96], p = 0.013, 5 seeds");
  CHECK(fm.summaries == std::vector<std::string>{htga.summary});
  CHECK(has(fm.warnings, "with 5 pairs the exact Wilcoxon test cannot reach p < 0.05"));

  // No validation split: selected by test, said so; one seed each is too few.
  const ReportGroup& mnist = group_of(groups, "mnist");
  const ReportRow& mh = selected_row(mnist, "htga");
  CHECK(mh.selected_by == "test");
  CHECK(mh.summary.find("too few finished seeds") != std::string::npos);
  CHECK(std::isnan(mh.ci_low));
  CHECK(mnist.summaries.empty());
  CHECK(has(mnist.warnings, "no run in this group has a validation split"));
  CHECK(has(mnist.warnings, "too few finished seeds"));

  // No seed in common: Welch's test, no Wilcoxon.
  const ReportRow& cifar = selected_row(group_of(groups, "cifar10"), "htga");
  CHECK(cifar.diff_test == "welch");
  CHECK(cifar.n_pairs == 0);
  CHECK(cifar.diff == Approx(0.62 - 0.51));
  CHECK(std::isnan(cifar.p_wilcoxon));
  CHECK(cifar.p_t < 0.05);
}

TEST_CASE("select all shows every configuration and counts diverged and failed runs", "[analysis]") {
  Db db;
  Store s(db.path);
  AnalysisOptions o;
  o.select = "all";
  o.filter.grids = {"g"};
  const auto groups = analyse(s, o);
  REQUIRE(groups.size() == 1);
  const auto& rows = groups[0].rows;
  REQUIRE(rows.size() == 5);  // 2 sgd-clip + 3 htga configurations
  CHECK(rows[0].baseline);
  CHECK(rows[0].optimizer == "sgd-clip");
  int selected = 0;
  for (const auto& r : rows) {
    selected += r.selected;
    if (r.config["optimizer"].value("beta", 0.0) == 2.0) {
      CHECK(r.diverged == 1);
      CHECK(r.n == 4);
      CHECK(r.runs == 5);
      CHECK_FALSE(r.selected);  // the best validation score, but a seed diverged
    }
    if (r.optimizer == "sgd-clip" && r.config["optimizer"]["lr"] == 0.05) {
      CHECK(r.failed == 1);
      CHECK(r.runs == 6);
      CHECK(r.mean == Approx(0.866));
    }
  }
  CHECK(selected == 2);
  CHECK(has(groups[0].warnings, "htga beta=2.0 lr=0.1: 1 of 5 runs diverged"));
  CHECK(has(groups[0].warnings, "sgd-clip lr=0.05: 1 of 6 runs failed"));
}

TEST_CASE("another metric: a named one, or the loss, where lower is better", "[analysis]") {
  Db db;
  Store s(db.path);
  CHECK(htga::storage::final_metric(s.database(), db.htga1_seed0, "test", "mcc") == Approx(0.6));
  CHECK(htga::storage::final_metric(s.database(), db.htga1_seed0, "val", "acc") == Approx(0.85));
  CHECK(std::isnan(htga::storage::final_metric(s.database(), db.htga1_seed0, "test", "f1")));
  AnalysisOptions o;
  o.metric = "loss";  // selection by the lowest validation loss
  o.filter.grids = {"g"};
  o.select = "all";
  const auto groups = analyse(s, o);
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].metric == "loss");
  for (const auto& r : groups[0].rows) {
    if (r.selected && r.optimizer == "sgd-clip") CHECK(r.config["optimizer"]["lr"] == 0.1);  // val loss 0.2 < 0.3
    if (r.baseline) CHECK(r.mean == Approx(1 - 0.82));
  }
  CHECK(htga::analysis::lower_is_better("loss"));
  CHECK(htga::analysis::lower_is_better("ppl"));
  CHECK_FALSE(htga::analysis::lower_is_better("mcc"));
  CHECK(htga::analysis::is_fraction_metric("top5"));
  CHECK_FALSE(htga::analysis::is_fraction_metric("f1"));
  CHECK(htga::analysis::format_value(0.0312, /*fraction=*/true, /*sign=*/true) == "+3.12");
  CHECK(htga::analysis::format_value(2.345678, /*fraction=*/false) == "2.346");
  CHECK(htga::analysis::format_value(NAN, /*fraction=*/true) == "-");
}

TEST_CASE("an unknown metric, family or selection is an error that lists the valid ones", "[analysis]") {
  // Not an empty table: these used to print one row of dashes per configuration.
  Db db;
  Store s(db.path);
  auto error_of = [&](const AnalysisOptions& o) -> std::string {
    try {
      analyse(s, o);
    } catch (const htga::InputError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(htga::analysis::metrics_present(s, htga::storage::select_runs(s, {})) ==
        std::vector<std::string>{"acc", "loss", "mcc"});  // top5: a column, but never measured

  AnalysisOptions o;
  o.metric = "f2";
  CHECK(error_of(o) == db.path + ": --metric \"f2\": no run that matches has that metric; valid: acc, loss, mcc");
  o.metric = "top5";
  CHECK(error_of(o) == db.path + ": --metric \"top5\": no run that matches has that metric; valid: acc, loss, mcc");
  o.metric = "mcc";
  CHECK(error_of(o).empty());
  o.filter.grids = {"c"};  // mcc: only a run of grid g has it
  CHECK(error_of(o) == db.path + ": --metric \"mcc\": no run that matches has that metric; valid: acc, loss");

  o = AnalysisOptions{};
  o.compare = "adam";
  CHECK(error_of(o) == db.path + ": --compare \"adam\": no runs of that optimizer match; valid: htga, sgd-clip");
  o.filter.grids = {"c"};
  o.compare = "htga";
  CHECK(error_of(o).empty());

  o = AnalysisOptions{};
  o.select = "first";
  CHECK(error_of(o) == "--select \"first\": unknown selection; valid: best, all");

  o = AnalysisOptions{};
  o.filter.datasets = {"cifar100"};
  CHECK(error_of(o) == db.path + ": no runs match (check --grid, --dataset, --model, --optimizer)");
}

TEST_CASE("a run with a damaged config is left out and named; the others are reported", "[analysis]") {
  // One damaged row must not stop a report over many runs (issue 16).
  Db db;
  {
    Store s(db.path);
    htga::storage::Statement q(s.database(), "UPDATE runs SET config = '{broken' WHERE id = ?1");
    q.bind(1, db.htga1_seed0);
    q.run();
  }
  Store s(db.path, Store::Mode::kReadOnly);
  std::vector<std::pair<int64_t, std::string>> damaged;
  const auto groups = analyse(s, AnalysisOptions{}, [&](const htga::storage::RunRecord& r, const std::string& why) {
    damaged.push_back({r.id, why});
  });
  REQUIRE(damaged.size() == 1);
  CHECK(damaged[0].first == db.htga1_seed0);
  CHECK_THAT(damaged[0].second, Catch::StartsWith("its stored config is not valid JSON (parse error"));

  REQUIRE(groups.size() == 3);  // every group still there
  const ReportGroup& fm = group_of(groups, "fashion-mnist");
  const ReportRow& htga = selected_row(fm, "htga");
  CHECK(htga.config["optimizer"]["beta"] == 1.0);
  CHECK(htga.runs == 4);
  CHECK(htga.seeds == std::vector<int64_t>{1, 2, 3, 4});
  CHECK(htga.mean == Approx(0.86));   // 0.83, 0.85, 0.87, 0.89
  CHECK(htga.diff == Approx(0.035));  // paired with the baseline's seeds 1..4: 0.02..0.05
  CHECK(htga.n_pairs == 4);
  CHECK(fm.rows[0].n == 5);  // the baseline keeps its five seeds
  CHECK(has(fm.warnings, "htga: paired on the 4 seeds both have (4 and 5 finished)"));
  CHECK(selected_row(group_of(groups, "cifar10"), "htga").n == 3);

  // Without a callback, the damaged run is an error that names it, not a JSON parse error.
  try {
    analyse(s, AnalysisOptions{});
    FAIL("no error for the damaged run");
  } catch (const htga::InputError& e) {
    CHECK_THAT(e.what(), Catch::StartsWith(db.path + ": run " + std::to_string(db.htga1_seed0) +
                                           ": its stored config is not valid JSON (parse error"));
  }
  // A filter that leaves the damaged run out does not hear of it.
  AnalysisOptions cifar;
  cifar.filter.grids = {"c"};
  damaged.clear();
  CHECK(analyse(s, cifar, [&](const htga::storage::RunRecord& r, const std::string& why) {
          damaged.push_back({r.id, why});
        }).size() == 1);
  CHECK(damaged.empty());
}

TEST_CASE("the analysis and everything it includes build without LibTorch and CLI11", "[analysis]") {
  // Follows the project's includes from experiments/analysis/, with the source of every project
  // header reached (the libraries it links), and looks at every include on the way. The build
  // shows the rest: htga_pure_tests links htga_analysis only, and no LibTorch include path.
  namespace fs = std::filesystem;
  const fs::path root = HTGA_SOURCE_DIR;
  const std::regex include_line(R"(^\s*#\s*include\s*([<"])([^>"]+)[>"])");
  std::vector<std::string> todo;
  for (const auto& e : fs::directory_iterator(root / "experiments" / "analysis"))
    todo.push_back(fs::relative(e.path(), root).string());
  std::set<std::string> seen, outside;
  std::vector<std::string> forbidden;
  while (!todo.empty()) {
    const std::string file = todo.back();
    todo.pop_back();
    if (!seen.insert(file).second) continue;
    std::ifstream in(root / file);
    REQUIRE(in);
    std::string line;
    std::smatch m;
    while (std::getline(in, line)) {
      if (!std::regex_search(line, m, include_line)) continue;
      const std::string name = m[2];
      if (m[1] == "\"" && fs::exists(root / name)) {
        todo.push_back(name);
        const fs::path source = fs::path(name).replace_extension(".cpp");
        if (fs::exists(root / source)) todo.push_back(source.string());
        continue;
      }
      for (const char* prefix : {"torch/", "ATen/", "c10/", "caffe2/", "CLI/"})
        if (name.rfind(prefix, 0) == 0) forbidden.push_back(file + ": " + name);
    }
  }
  CHECK(forbidden == std::vector<std::string>{});
  for (const auto& f : seen) {
    const bool ok = f.rfind("experiments/analysis/", 0) == 0 || f.rfind("storage/", 0) == 0 ||
                    f == "experiments/config.h" || f == "experiments/config.cpp" || f == "experiments/registry.h" ||
                    f == "experiments/registry.cpp" || f == "experiments/error.h";
    if (!ok) outside.insert(f);
  }
  CHECK(outside == std::set<std::string>{});
  CHECK(seen.count("experiments/config.cpp"));  // the walk reached the libraries' sources
  CHECK(seen.count("storage/store.cpp"));
}

TEST_CASE("--adjust: the report's comparisons adjusted together, the sentences use them", "[analysis]") {
  Db db;
  Store s(db.path);
  // The comparisons: selected rows other than the baseline with a p-value.
  auto compared = [](const std::vector<ReportGroup>& groups) {
    std::vector<const ReportRow*> out;
    for (const auto& g : groups)
      for (const auto& r : g.rows)
        if (r.selected && !r.baseline && std::isfinite(r.p_t) && r.n >= 3) out.push_back(&r);
    return out;
  };
  const auto plain = analyse(s, AnalysisOptions{});
  std::vector<double> p;
  for (const ReportRow* r : compared(plain)) {
    p.push_back(r->p_t);
    CHECK(std::isnan(r->p_t_adj));  // none: not adjusted
  }
  REQUIRE(!p.empty());
  for (const std::string method : {"holm", "bh"}) {
    AnalysisOptions o;
    o.adjust = method;
    const auto groups = analyse(s, o);
    const auto rows = compared(groups);
    REQUIRE(rows.size() == p.size());
    const auto want = method == "holm" ? htga::stats::holm(p) : htga::stats::benjamini_hochberg(p);
    for (size_t i = 0; i < rows.size(); ++i) {
      INFO(method << " " << rows[i]->optimizer);
      CHECK(rows[i]->p_t == p[i]);
      CHECK(rows[i]->p_t_adj == Approx(want[i]));
      CHECK(rows[i]->p_t_adj >= rows[i]->p_t);
      CHECK(rows[i]->summary.find(method == "holm" ? "Holm-adjusted" : "BH-adjusted") != std::string::npos);
    }
  }
  AnalysisOptions bad;
  bad.adjust = "bonferroni";
  CHECK_THROWS_WITH(analyse(s, bad), "--adjust \"bonferroni\": unknown adjustment; valid: none, holm, bh");
}
