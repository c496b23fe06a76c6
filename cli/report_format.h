#pragma once
// The report as output: aligned text or markdown tables with the summaries and warnings, CSV
// rows, JSON rows. The numbers and sentences come from experiments/analysis.

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/csv.h"
#include "experiments/analysis/analysis.h"

namespace htga::cli {

/// An aligned text table per group (markdown: pipe tables), summaries and warnings.
void print_report(const std::vector<analysis::ReportGroup>& groups, std::ostream& out, bool markdown);
/// One CSV row per report row; the config flattened into columns (optimizer.lr, ...).
void write_report_csv(const std::vector<analysis::ReportGroup>& groups, CsvWriter& csv);
/// An array of row objects; NaN as null.
nlohmann::json report_json(const std::vector<analysis::ReportGroup>& groups);

}  // namespace htga::cli
