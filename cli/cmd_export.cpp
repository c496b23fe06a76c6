#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <set>

#include "cli/commands.h"
#include "cli/csv.h"
#include "experiments/error.h"
#include "storage/store.h"

namespace htga::cli {

void require_database(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw InputError(path + ": no such database (run a grid first, or pass --db)");
}

long run_export(const ExportOptions& options) {
  if (options.what != "steps" && options.what != "runs" && options.what != "alpha")
    throw InputError("export: unknown table \"" + options.what + "\"; valid: steps, runs, alpha");
  require_database(options.db_path);
  storage::Store store(options.db_path);
  const std::string out_path = options.out.empty() ? "results/" + options.what + ".csv" : options.out;
  AtomicFile file(out_path);
  long rows = 0;
  if (options.what == "alpha") {
    file.write(csv_line({"run_id", "step", "layer", "name", "numel", "alpha_hat"}));
    std::map<int64_t, std::vector<storage::LayerInfo>> names;
    for (const auto& r : store.runs()) names[r.id] = store.layers(r.id);
    std::string chunk;
    store.for_each_layer_alpha([&](int64_t run_id, const storage::LayerAlphaRow& r) {
      const auto& layers = names[run_id];
      const bool known = r.layer >= 0 && r.layer < static_cast<int64_t>(layers.size());
      chunk += csv_line({std::to_string(run_id), std::to_string(r.step), std::to_string(r.layer),
                         known ? layers[r.layer].name : "", known ? std::to_string(layers[r.layer].numel) : "",
                         csv_number(r.alpha_hat)});
      if (chunk.size() > (1 << 20)) {
        file.write(chunk);
        chunk.clear();
      }
      ++rows;
    });
    file.write(chunk);
  } else if (options.what == "steps") {
    file.write(csv_line({"run_id", "step", "epoch", "loss", "train_acc", "lr", "alpha_hat", "grad_norm", "alpha_smooth",
                         "phase", "clip_coef"}));
    std::string chunk;
    store.for_each_step([&](int64_t run_id, const storage::StepRow& r) {
      chunk += csv_line({std::to_string(run_id), std::to_string(r.step), std::to_string(r.epoch), csv_number(r.loss),
                         csv_number(r.train_acc), csv_number(r.lr), csv_number(r.alpha_hat), csv_number(r.grad_norm),
                         csv_number(r.alpha_smooth), csv_number(r.phase), csv_number(r.clip_coef)});
      if (chunk.size() > (1 << 20)) {
        file.write(chunk);
        chunk.clear();
      }
      ++rows;
    });
    file.write(chunk);
  } else {
    const auto runs = store.runs();
    std::vector<std::map<std::string, std::string>> flat(runs.size());
    std::set<std::string> config_columns;
    for (size_t i = 0; i < runs.size(); ++i) {
      flatten_json(nlohmann::json::parse(runs[i].config_json), "", flat[i]);
      flat[i].erase("seed");  // a fixed column already
      for (const auto& [k, v] : flat[i]) config_columns.insert(k);
    }
    std::vector<std::string> header{"run_id", "grid",     "status",    "dataset",   "model",   "optimizer",
                                    "seed",   "test_acc", "test_loss", "train_acc", "gen_gap", "train_time_s",
                                    "steps",  "device",   "cell_key",  "error"};
    header.insert(header.end(), config_columns.begin(), config_columns.end());
    file.write(csv_line(header));
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto& r = runs[i];
      std::vector<std::string> line{std::to_string(r.id),
                                    r.grid,
                                    r.status,
                                    r.dataset,
                                    r.model,
                                    r.optimizer,
                                    std::to_string(r.seed),
                                    csv_number(r.test_acc),
                                    csv_number(r.test_loss),
                                    csv_number(r.train_acc),
                                    csv_number(r.gen_gap),
                                    csv_number(r.train_time_s),
                                    std::to_string(r.steps),
                                    r.device,
                                    r.cell_key,
                                    r.error};
      for (const auto& c : config_columns) {
        auto it = flat[i].find(c);
        line.push_back(it == flat[i].end() ? "" : it->second);
      }
      file.write(csv_line(line));
      ++rows;
    }
  }
  file.commit();
  return rows;
}

void setup_export(CLI::App& app, int& exit_code) {
  auto* exp = app.add_subcommand("export", "Export tables as tidy CSV (one header row)");
  exp->require_subcommand(1);
  const std::pair<const char*, const char*> tables[] = {
      {"steps",
       "One row per (run, step): run_id, step, epoch, loss, train_acc, lr, alpha_hat, grad_norm, "
       "alpha_smooth, phase, clip_coef"},
      {"runs", "One row per run: status, final test metrics, then the config flattened (optimizer.lr, ...)"},
      {"alpha", "One row per (run, step, layer) of runs with scope layer: alpha_hat per parameter tensor"}};
  for (const auto& [name, help] : tables) {
    auto opts = std::make_shared<ExportOptions>();
    opts->what = name;
    auto* sub = exp->add_subcommand(name, help);
    sub->add_option("--db", opts->db_path, "Result database")->capture_default_str();
    sub->add_option("-o,--out", opts->out, std::string("CSV file to write (default results/") + name + ".csv)");
    sub->callback([opts, &exit_code]() {
      long n = run_export(*opts);
      std::cerr << "wrote " << n << " rows to " << (opts->out.empty() ? "results/" + opts->what + ".csv" : opts->out)
                << std::endl;
      exit_code = 0;
    });
  }
}

}  // namespace htga::cli
