#include "cli/report_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <ostream>
#include <set>

namespace htga::cli {

using analysis::format_value;
using analysis::is_fraction_metric;
using analysis::ReportGroup;
using analysis::ReportRow;
using nlohmann::json;

namespace {

std::string p_text(double p) {
  if (!std::isfinite(p)) return "-";
  if (p < 0.001) return "<0.001";
  return fmt::format("{:.3f}", p);
}

std::string time_text(double s) {
  if (!std::isfinite(s)) return "-";
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{:.1f}m", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

struct TextTable {
  std::vector<std::string> header;
  std::string align;  // 'l' or 'r' per column
  std::vector<std::vector<std::string>> rows;

  void print(std::ostream& out, bool markdown, const std::string& indent) const {
    std::vector<size_t> width(header.size());
    for (size_t c = 0; c < header.size(); ++c) {
      width[c] = header[c].size();
      for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
    }
    auto line = [&](const std::vector<std::string>& cells) {
      std::string s = markdown ? "|" : indent;
      for (size_t c = 0; c < cells.size(); ++c) {
        const std::string pad(width[c] - cells[c].size(), ' ');
        const std::string cell = align[c] == 'r' ? pad + cells[c] : cells[c] + pad;
        s += markdown ? " " + cell + " |" : (c ? "  " : "") + cell;
      }
      while (!markdown && !s.empty() && s.back() == ' ') s.pop_back();
      out << s << "\n";
    };
    line(header);
    if (markdown) {
      std::string s = "|";
      for (size_t c = 0; c < header.size(); ++c)
        s += " " + (align[c] == 'r' ? std::string(width[c] - 1, '-') + ":" : std::string(width[c], '-')) + " |";
      out << s << "\n";
    }
    for (const auto& r : rows) line(r);
  }
};

std::string escape_markdown(std::string s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

void print_report(const std::vector<ReportGroup>& groups, std::ostream& out, bool markdown) {
  // With --adjust, the comparisons the report makes show their adjusted p-values.
  bool adjusted = false;
  for (const auto& g : groups)
    for (const auto& r : g.rows) adjusted = adjusted || std::isfinite(r.p_t_adj);
  for (const auto& g : groups) {
    const bool fraction = is_fraction_metric(g.metric);
    const std::string unit = fraction ? " (%)" : "";
    const ReportRow* base = nullptr;
    for (const auto& r : g.rows)
      if (r.baseline) base = &r;
    const std::string selected_by = g.rows.empty() ? "val" : g.rows.front().selected_by;
    if (markdown)
      out << "### " << escape_markdown(g.label) << "\n\n";
    else
      out << g.label << "\n";
    out << (markdown ? "" : "  ")
        << fmt::format("test {}{} of each optimizer's configuration with the best mean {} {}; baseline: {}\n", g.metric,
                       unit, selected_by == "val" ? "validation" : "TEST", g.metric,
                       base ? base->optimizer + " " + base->label : "none");
    if (markdown) out << "\n";
    TextTable t;
    t.header = {"optimizer",
                "config",
                "n",
                "div",
                selected_by == "val" ? "val" : "sel(test)",
                "test",
                "sd",
                "95% CI",
                "diff",
                "diff 95% CI",
                adjusted ? "p (t) adj" : "p (t)",
                adjusted ? "p (W) adj" : "p (W)",
                "gap",
                "alpha",
                "time"};
    t.align = "llrrrrrlrlrrrrr";
    for (const auto& r : g.rows) {
      std::string name = r.optimizer;
      if (r.selected && g.rows.size() > 1 && std::count_if(g.rows.begin(), g.rows.end(), [&](const ReportRow& o) {
                                               return o.optimizer == r.optimizer;
                                             }) > 1)
        name = "*" + name;
      const std::string ci = std::isfinite(r.ci_low) ? fmt::format("[{}, {}]", format_value(r.ci_low, fraction),
                                                                   format_value(r.ci_high, fraction))
                                                     : "-";
      const std::string dci = std::isfinite(r.diff_ci_low)
                                  ? fmt::format("[{}, {}]", format_value(r.diff_ci_low, fraction, true),
                                                format_value(r.diff_ci_high, fraction, true))
                                  : "-";
      std::string diff = r.baseline ? "baseline" : format_value(r.diff, fraction, true);
      if (r.diff_test == "welch") diff += " (Welch)";
      t.rows.push_back(
          {markdown ? escape_markdown(name) : name, markdown ? escape_markdown(r.label) : r.label,
           fmt::format("{}/{}", r.n, r.runs), std::to_string(r.diverged), format_value(r.val_mean, fraction),
           format_value(r.mean, fraction), format_value(r.std, fraction), ci, diff, dci,
           p_text(std::isfinite(r.p_t_adj) ? r.p_t_adj : r.p_t),
           p_text(std::isfinite(r.p_wilcoxon_adj) ? r.p_wilcoxon_adj : r.p_wilcoxon), format_value(r.gen_gap, true),
           std::isfinite(r.alpha_hat_median) ? fmt::format("{:.2f}", r.alpha_hat_median) : "-", time_text(r.time_s)});
    }
    t.print(out, markdown, "  ");
    if (markdown) out << "\n";
    for (const auto& s : g.summaries) out << (markdown ? "- " : "  ") << s << "\n";
    for (const auto& w : g.warnings) out << (markdown ? "- **warning:** " : "  warning: ") << w << "\n";
    out << "\n";
  }
  const std::string legend =
      "n: finished/all runs; div: diverged; val: mean validation metric (the selection); test: mean test metric, "
      "sd across seeds, 95% CI (Student t); diff: minus the baseline, paired by seed (or Welch, unpaired), "
      "p (t): t-test, p (W): Wilcoxon signed-rank (exact up to 25 pairs); gap: train - test accuracy; alpha: "
      "median alpha_hat over the last 10% of steps; time: per run; *: selected in --select all" +
      std::string(adjusted ? "; adj: adjusted for the report's comparisons (--adjust; the rest unadjusted)" : "");
  out << (markdown ? "_" + legend + "_" : legend) << "\n";
}

void write_report_csv(const std::vector<ReportGroup>& groups, CsvWriter& csv) {
  std::set<std::string> config_columns;
  std::vector<std::map<std::string, std::string>> flat;
  for (const auto& g : groups)
    for (const auto& r : g.rows) {
      flat.emplace_back();
      flatten_json(r.config, "", flat.back());
      for (const auto& [k, v] : flat.back()) config_columns.insert(k);
    }
  std::vector<std::string> header{"group",
                                  "dataset",
                                  "model",
                                  "optimizer",
                                  "label",
                                  "metric",
                                  "selected",
                                  "baseline",
                                  "selected_by",
                                  "runs",
                                  "n",
                                  "diverged",
                                  "failed",
                                  "val_mean",
                                  "mean",
                                  "std",
                                  "ci_low",
                                  "ci_high",
                                  "diff",
                                  "diff_ci_low",
                                  "diff_ci_high",
                                  "n_pairs",
                                  "diff_test",
                                  "p_t",
                                  "p_wilcoxon",
                                  "p_t_adj",
                                  "p_wilcoxon_adj",
                                  "gen_gap",
                                  "alpha_hat_median",
                                  "time_s"};
  header.insert(header.end(), config_columns.begin(), config_columns.end());
  csv.row(header);
  size_t i = 0;
  for (const auto& g : groups)
    for (const auto& r : g.rows) {
      csv.field(r.group).field(r.dataset).field(r.model).field(r.optimizer).field(r.label).field(r.metric);
      csv.integer(r.selected).integer(r.baseline).field(r.selected_by);
      csv.integer(r.runs).integer(r.n).integer(r.diverged).integer(r.failed);
      csv.number(r.val_mean).number(r.mean).number(r.std).number(r.ci_low).number(r.ci_high);
      csv.number(r.diff).number(r.diff_ci_low).number(r.diff_ci_high).integer(r.n_pairs).field(r.diff_test);
      csv.number(r.p_t)
          .number(r.p_wilcoxon)
          .number(r.p_t_adj)
          .number(r.p_wilcoxon_adj)
          .number(r.gen_gap)
          .number(r.alpha_hat_median)
          .number(r.time_s);
      const auto& f = flat[i++];
      for (const auto& c : config_columns) {
        auto it = f.find(c);
        csv.field(it == f.end() ? "" : it->second);
      }
      csv.end_row();
    }
}

json report_json(const std::vector<ReportGroup>& groups) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json out = json::array();
  for (const auto& g : groups)
    for (const auto& r : g.rows) {
      json values = json::array();
      for (double v : r.test) values.push_back(num(v));
      out.push_back({{"group", r.group},
                     {"dataset", r.dataset},
                     {"model", r.model},
                     {"optimizer", r.optimizer},
                     {"config", r.config},
                     {"label", r.label},
                     {"metric", r.metric},
                     {"selected", r.selected},
                     {"baseline", r.baseline},
                     {"selected_by", r.selected_by},
                     {"runs", r.runs},
                     {"n", r.n},
                     {"diverged", r.diverged},
                     {"failed", r.failed},
                     {"seeds", r.seeds},
                     {"test_values", values},
                     {"val_mean", num(r.val_mean)},
                     {"mean", num(r.mean)},
                     {"std", num(r.std)},
                     {"ci_low", num(r.ci_low)},
                     {"ci_high", num(r.ci_high)},
                     {"diff", num(r.diff)},
                     {"diff_ci_low", num(r.diff_ci_low)},
                     {"diff_ci_high", num(r.diff_ci_high)},
                     {"n_pairs", r.n_pairs},
                     {"diff_test", r.diff_test.empty() ? json(nullptr) : json(r.diff_test)},
                     {"p_t", num(r.p_t)},
                     {"p_wilcoxon", num(r.p_wilcoxon)},
                     {"p_t_adj", num(r.p_t_adj)},
                     {"p_wilcoxon_adj", num(r.p_wilcoxon_adj)},
                     {"gen_gap", num(r.gen_gap)},
                     {"alpha_hat_median", num(r.alpha_hat_median)},
                     {"time_s", num(r.time_s)},
                     {"summary", r.summary.empty() ? json(nullptr) : json(r.summary)}});
    }
  return out;
}

}  // namespace htga::cli
