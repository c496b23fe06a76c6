// Text grids end to end (issue 6): GLUE folders in the official formats, a SQuAD file and an LM
// corpus, written small by the test, trained by run_grid with a tiny transformer; the named
// metrics and the runs' main metrics land in the database.

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <sstream>
#include <string>

#include "cli/progress.h"
#include "experiments/error.h"
#include "experiments/grid.h"
#include "experiments/runner.h"
#include "storage/store.h"
#include "test_util.h"

using htga::test::TempDir;
using htga::test::write_text;

namespace {

const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "big", "red"};

/// A deterministic sentence of `n` words; `good` sentences contain "good".
std::string sentence(int i, int n, bool good) {
  std::string s;
  for (int k = 0; k < n; ++k) s += std::string(k ? " " : "") + kWords[(i * 7 + k * 3) % 12];
  return s + (good ? " good ." : " bad .");
}

void write_glue(const TempDir& dir) {
  std::filesystem::create_directories(dir.file("CoLA"));
  std::filesystem::create_directories(dir.file("STS-B"));
  std::filesystem::create_directories(dir.file("MNLI"));
  // CoLA: no header; source, label, original mark, sentence.
  for (const char* f : {"train.tsv", "dev.tsv"}) {
    std::string text;
    for (int i = 0; i < (f[0] == 't' ? 80 : 24); ++i)
      text += "gj04\t" + std::to_string(i % 2) + "\t" + (i % 2 ? "" : "*") + "\t" + sentence(i, 5, i % 2) + "\n";
    write_text(dir.file(std::string("CoLA/") + f), text);
  }
  // STS-B: the official ten columns with a header; scores 0..5.
  for (const char* f : {"train.tsv", "dev.tsv"}) {
    std::string text = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
    for (int i = 0; i < (f[0] == 't' ? 64 : 20); ++i)
      text += std::to_string(i) + "\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\t" + sentence(i, 4, true) +
              "\t" + sentence(i + (i % 3), 4, true) + "\t" + std::to_string((i % 6) * 1.0 - (i % 6 == 5 ? 0 : 0)) +
              "\n";
    write_text(dir.file(std::string("STS-B/") + f), text);
  }
  // MNLI: genre columns; train has label1, dev label1..label5, then gold_label.
  const char* labels[] = {"contradiction", "entailment", "neutral"};
  for (const char* f : {"train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"}) {
    const bool train = f[0] == 't';
    std::string text =
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\t" +
        std::string(train ? "" : "label2\tlabel3\tlabel4\tlabel5\t") + "gold_label\n";
    for (int i = 0; i < (train ? 60 : 15); ++i) {
      const char* l = labels[i % 3];
      text += std::to_string(i) + "\t1\t1e\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t" + sentence(i, 4, i % 2) +
              "\t" + sentence(i + 1, 3, i % 3) + "\t" + l + "\t" +
              (train ? "" : std::string(l) + "\t" + l + "\t" + l + "\t" + l + "\t") + l + "\n";
    }
    write_text(dir.file(std::string("MNLI/") + f), text);
  }
}

void write_squad(const TempDir& dir) {
  std::filesystem::create_directories(dir.file("squad"));
  for (const char* f : {"train-v1.1.json", "dev-v1.1.json"}) {
    std::string paragraphs;
    for (int p = 0; p < 8; ++p) {
      const std::string name = std::string(kWords[p]) + "land";
      const std::string context = "The capital of " + name + " is " + kWords[(p + 3) % 12] + " city . It is big .";
      const auto start = context.find(kWords[(p + 3) % 12], 15 + name.size());
      paragraphs += std::string(p ? "," : "") + R"({"context": ")" + context + R"(", "qas": [{"id": "q)" +
                    std::to_string(p) + R"(", "question": "What is the capital of )" + name +
                    R"( ?", "answers": [{"text": ")" + kWords[(p + 3) % 12] + R"( city", "answer_start": )" +
                    std::to_string(start) + "}]}]}";
    }
    write_text(dir.file(std::string("squad/") + f),
               R"({"version": "1.1", "data": [{"title": "T", "paragraphs": [)" + paragraphs + "]}]}");
  }
}

void write_lm(const TempDir& dir) {
  std::filesystem::create_directories(dir.file("lm"));
  for (const char* split : {"train", "valid", "test"}) {
    std::string text;
    for (int i = 0; i < (split[0] == 't' && split[1] == 'r' ? 60 : 10); ++i) text += sentence(i, 6, i % 2) + "\n";
    write_text(dir.file(std::string("lm/wiki.") + split + ".tokens"), text);
  }
}

}  // namespace

TEST_CASE("text grid: GLUE (CoLA, STS-B, MNLI), SQuAD and LM cells train and store their metrics", "[text]") {
  TempDir dir("text-e2e");
  write_glue(dir);
  write_squad(dir);
  write_lm(dir);
  write_text(dir.file("g.json"), R"({
    "name": "text-e2e",
    "defaults": {"epochs": 2, "batch_size": 16, "device": "cpu", "checkpoint_every": 1},
    "datasets": [
      {"name": "glue/cola", "path": ")" +
                                     dir.file("CoLA") + R"(", "max_len": 16, "val_size": 10},
      {"name": "glue/stsb", "path": ")" +
                                     dir.file("STS-B") + R"(", "max_len": 24},
      {"name": "glue/mnli", "path": ")" +
                                     dir.file("MNLI") + R"(", "max_len": 24},
      {"name": "squad", "path": ")" + dir.file("squad") +
                                     R"(", "max_len": 40, "val_size": 2},
      {"name": "lm", "path": ")" + dir.file("lm") +
                                     R"(", "level": "char", "seq_len": 16}
    ],
    "models": [{"name": "transformer", "layers": 1, "d_model": 16, "heads": 2, "ff": 32}],
    "optimizers": [{"name": "sgd-clip", "lr": 0.1}, {"name": "htga", "lr": 0.1, "warmup_steps": 2}],
    "seeds": [0]
  })");
  htga::experiments::RunOptions o;
  o.grid_path = dir.file("g.json");
  o.db_path = dir.file("t.db");
  std::ostringstream progress_text;
  htga::cli::LineProgress progress(progress_text);
  const auto summary = htga::experiments::run_grid(o, progress);
  CHECK(summary.finished == 10);
  CHECK(summary.failed == 0);

  htga::storage::Store store(dir.file("t.db"));
  const auto runs = store.runs();
  REQUIRE(runs.size() == 10);
  const std::map<std::string, std::string> main_metric{
      {"glue/cola", "mcc"}, {"glue/stsb", "pearson"}, {"glue/mnli", "acc"}, {"squad", "f1"}, {"lm", "ppl"}};
  for (const auto& r : runs) {
    INFO(r.dataset << " " << r.optimizer << " " << r.error);
    CHECK(r.status == "finished");
    CHECK(r.metric == main_metric.at(r.dataset));
    CHECK(std::isfinite(r.test_metric));
    std::map<std::string, double> last;  // split/name -> value of the last epoch
    for (const auto& m : store.metrics(r.id))
      if (m.epoch == 1) last[m.split + "/" + m.name] = m.value;
    if (r.dataset == "glue/cola") {
      CHECK(last.count("val/mcc"));
      CHECK(last.at("test/mcc") >= -1.0);
      CHECK(last.at("test/mcc") <= 1.0);
      CHECK(last.at("test/acc") == Approx(r.test_acc));
      CHECK(r.test_metric == Approx(last.at("test/mcc")));
      CHECK(std::isfinite(r.val_metric));
    } else if (r.dataset == "glue/stsb") {
      // Pearson is NaN only for constant predictions; a trained regressor's are not.
      CHECK(std::abs(last.at("test/pearson")) <= 1.0);
      CHECK(std::abs(last.at("test/spearman")) <= 1.0);
      CHECK(std::isnan(r.test_acc));
    } else if (r.dataset == "glue/mnli") {
      CHECK(last.at("test/acc") >= 0.0);
      CHECK(last.at("test_mismatched/acc") >= 0.0);
      CHECK(last.at("test_mismatched/acc") <= 1.0);
    } else if (r.dataset == "squad") {
      CHECK(last.at("test/em") >= 0.0);
      CHECK(last.at("test/f1") <= 100.0);
      CHECK(last.at("test/f1") >= last.at("test/em"));
      CHECK(last.count("val/f1"));
    } else if (r.dataset == "lm") {
      CHECK(last.at("test/ppl") > 1.0);
      CHECK(last.at("val/ppl") > 1.0);
      // ppl = exp(mean token NLL): the test loss stored beside it.
      CHECK(std::log(last.at("test/ppl")) == Approx(r.test_loss).epsilon(1e-6));
      CHECK(r.test_metric == Approx(last.at("test/ppl")));
      // An untrained char model starts near the vocabulary size; two epochs must do better.
      CHECK(r.test_metric < 40.0);
    }
  }
  // Every step row has a finite loss and alpha_hat was estimated on text too.
  for (const auto& r : runs) {
    htga::storage::Statement q(store.database(),
                               "SELECT COUNT(*), SUM(loss IS NULL), COUNT(alpha_hat) FROM steps WHERE run_id = ?1");
    q.bind(1, r.id);
    REQUIRE(q.step());
    CHECK(q.get_int(0) > 0);
    CHECK(q.get_int(1) == 0);
    CHECK(q.get_int(2) > 0);
  }
  // A second run skips everything: the cells are finished.
  CHECK(htga::experiments::run_grid(o, progress).skipped == 10);
}

TEST_CASE("a missing GLUE folder is one line naming where the tool looked and the layout", "[text]") {
  TempDir dir("glue-missing");
  write_text(dir.file("g.json"), R"({
    "name": "g",
    "datasets": [{"name": "glue/rte", "path": ")" +
                                     dir.file("nowhere/RTE") + R"("}],
    "models": [{"name": "transformer"}],
    "optimizers": [{"name": "sgd-clip"}]
  })");
  try {
    htga::experiments::load_grid(dir.file("g.json"));
    FAIL("no error");
  } catch (const htga::InputError& e) {
    const std::string msg = e.what();
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.find(dir.file("nowhere/RTE")) != std::string::npos);
    CHECK(msg.find("train.tsv, dev.tsv") != std::string::npos);
    CHECK(msg.find("/datasets/0") != std::string::npos);
  }
  // The default path is data/glue/<official folder name>.
  write_text(dir.file("d.json"), R"({"name": "g", "datasets": [{"name": "glue/sst2"}], "models": [{"name":
    "transformer"}], "optimizers": [{"name": "sgd-clip"}]})");
  CHECK_THROWS_WITH(htga::experiments::load_grid(dir.file("d.json")), Catch::Contains("data/glue/SST-2"));
}

TEST_CASE("image models refuse text datasets and transformer-lm needs the lm dataset", "[text]") {
  TempDir dir("text-models");
  write_glue(dir);
  write_text(dir.file("g.json"), R"({
    "name": "m", "defaults": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    "datasets": [{"name": "glue/cola", "path": ")" +
                                     dir.file("CoLA") + R"(", "max_len": 16}],
    "models": [{"name": "mlp"}, {"name": "transformer-lm", "layers": 1, "d_model": 16, "heads": 2, "ff": 32}],
    "optimizers": [{"name": "sgd-clip"}]
  })");
  htga::experiments::RunOptions o;
  o.grid_path = dir.file("g.json");
  o.db_path = dir.file("t.db");
  std::ostringstream progress_text;
  htga::cli::LineProgress progress(progress_text);
  // Bad input, found before anything is written (every model is built once before training).
  CHECK_THROWS_AS(htga::experiments::run_grid(o, progress), htga::InputError);
  CHECK_THROWS_WITH(htga::experiments::run_grid(o, progress), Catch::Contains(dir.file("g.json")) &&
                                                                  Catch::Contains("model mlp") &&
                                                                  Catch::Contains("takes images"));
  CHECK_FALSE(std::filesystem::exists(dir.file("t.db")));
  write_text(dir.file("lm.json"), R"({
    "name": "m", "defaults": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    "datasets": [{"name": "glue/cola", "path": ")" +
                                      dir.file("CoLA") + R"(", "max_len": 16}],
    "models": [{"name": "transformer-lm", "layers": 1, "d_model": 16, "heads": 2, "ff": 32}],
    "optimizers": [{"name": "sgd-clip"}]
  })");
  o.grid_path = dir.file("lm.json");
  CHECK_THROWS_WITH(htga::experiments::run_grid(o, progress), Catch::Contains("takes the lm dataset"));
  CHECK_FALSE(std::filesystem::exists(dir.file("t.db")));
}
