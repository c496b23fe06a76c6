// The CLI's views of a grid run: plain lines for logs, -q shows failures only.

#include "cli/progress.h"

#include <catch2/catch.hpp>
#include <sstream>

using namespace htga::experiments;

TEST_CASE("progress: plain lines name the cell, quiet shows only failures", "[cli]") {
  const CellRef c{2, 8, "abc", "mlp sgd-clip lr=0.1"};
  CellEnded ok;
  ok.status = "finished";
  ok.metric = "acc";
  ok.test_acc = 0.8125;
  ok.test_loss = 0.5;
  ok.steps = 40;
  ok.seconds = 1.5;
  CellEnded bad;
  bad.status = "failed";
  bad.error = "something broke";

  std::ostringstream lines;
  htga::cli::LineProgress plain(lines, 0);
  plain.dataset_loaded({"fashion-mnist", "cpu", "read x", 100, 10, 50, 0.25});
  plain.cell_skipped(c, "finished");
  plain.cell_started(c, {1, 2, 40, 0, 0, false});
  plain.cell_ended(c, ok);
  plain.cell_ended(c, bad);
  const std::string text = lines.str();
  CHECK(text.find("loaded fashion-mnist (100 train, 10 val, 50 test) on cpu") != std::string::npos);
  CHECK(text.find("[3/8] mlp sgd-clip lr=0.1: already finished, skipped") != std::string::npos);
  CHECK(text.find("[3/8] mlp sgd-clip lr=0.1: test acc 81.25% loss 0.5000, 40 steps, 1.5 s") != std::string::npos);
  CHECK(text.find("FAILED: something broke") != std::string::npos);

  std::ostringstream quiet_text;
  htga::cli::QuietProgress quiet(quiet_text);
  quiet.dataset_loaded({"fashion-mnist", "cpu", "", 1, 1, 1, 0});
  quiet.cell_ended(c, ok);
  CHECK(quiet_text.str().empty());
  quiet.cell_ended(c, bad);
  CHECK(quiet_text.str() == "[3/8] mlp sgd-clip lr=0.1: FAILED: something broke\n");
}

TEST_CASE("progress: ETA in seconds, minutes, hours", "[cli]") {
  CHECK(htga::cli::format_eta(12) == "12s");
  CHECK(htga::cli::format_eta(600) == "10m");
  CHECK(htga::cli::format_eta(9000) == "2.5h");
  CHECK(htga::cli::format_eta(NAN) == "?");
}
