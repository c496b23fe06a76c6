#include "experiments/cell_writer.h"

#include <filesystem>

namespace htga::experiments {

template <class F>
void CellWriter::post(F job) {
  writer_.post([this, job = std::move(job)](storage::Store& s) {
    if (lost()) return;
    try {
      job(s);
    } catch (const storage::LostClaim&) {
      lost_ = true;
    }
  });
}

void CellWriter::steps(std::vector<storage::StepRow> rows) {
  post([f = fence_, rows = std::move(rows)](storage::Store& s) {
    s.append_steps(f, rows);
    s.heartbeat(f);
  });
}

void CellWriter::layer_alphas(std::vector<storage::LayerAlphaRow> rows) {
  post([f = fence_, rows = std::move(rows)](storage::Store& s) { s.append_layer_alphas(f, rows); });
}

void CellWriter::layers(std::vector<storage::LayerInfo> layers) {
  post([f = fence_, layers = std::move(layers)](storage::Store& s) { s.set_layers(f, layers); });
}

void CellWriter::eval(const storage::EvalRow& row, std::vector<storage::MetricRow> metrics) {
  post([f = fence_, row, metrics = std::move(metrics)](storage::Store& s) {
    s.add_eval(f, row);
    if (!metrics.empty()) s.add_metrics(f, metrics);
  });
}

void CellWriter::heartbeat() {
  post([f = fence_](storage::Store& s) { s.heartbeat(f); });
}

void CellWriter::checkpoint(const std::string& file, int64_t epoch, int64_t step, const std::string& previous) {
  writer_.post([this, f = fence_, file, epoch, step, previous](storage::Store& s) {
    std::error_code ec;
    if (!lost()) {
      try {
        s.set_checkpoint(f, file, epoch, step);
        if (!previous.empty() && previous != file) std::filesystem::remove(previous, ec);
        return;
      } catch (const storage::LostClaim&) {
        lost_ = true;
      }
    }
    std::filesystem::remove(file, ec);
  });
}

void CellWriter::sync() { writer_.sync(); }

}  // namespace htga::experiments
