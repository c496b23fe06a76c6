// Insert throughput of the step writer: rows per second through storage::Writer (one writer
// thread, a bounded queue, batched transactions of prepared inserts), as the runner writes them.
// Usage: build/htga_bench_storage [rows] [batch]   (prints JSON)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "storage/writer.h"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 64;
  const auto dir = std::filesystem::temp_directory_path() / "htga-bench-storage";
  std::filesystem::remove_all(dir);
  const std::string db = (dir / "bench.db").string();
  double post_s = 0, total_s = 0;
  {
    htga::storage::Writer writer(std::make_unique<htga::storage::Store>(db));
    htga::storage::RunRecord r;
    r.cell_key = "bench";
    r.grid = r.dataset = r.model = r.optimizer = "bench";
    r.config_json = "{}";
    const int64_t id = writer.call([&](htga::storage::Store& s) { return s.begin_run(r); });
    const auto t0 = Clock::now();
    for (int64_t first = 0; first < rows; first += batch) {
      std::vector<htga::storage::StepRow> b;
      for (int64_t s = first; s < std::min(rows, first + batch); ++s) {
        htga::storage::StepRow row;
        row.step = s;
        row.epoch = s / 469;
        row.loss = 1.0 / (1 + s);
        row.train_acc = 0.5;
        row.lr = 0.1;
        row.alpha_hat = 1.4;
        row.grad_norm = 2.0;
        row.clip_coef = 1.0;
        b.push_back(row);
      }
      const auto p0 = Clock::now();
      writer.post([id, b = std::move(b)](htga::storage::Store& s) { s.append_steps(id, b); });
      post_s += std::chrono::duration<double>(Clock::now() - p0).count();
    }
    writer.sync();
    total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::printf(
      "{\"rows\": %lld, \"batch\": %lld, \"seconds\": %.3f, \"rows_per_s\": %.0f, "
      "\"post_us_per_row\": %.3f, \"db_bytes_per_row\": %.1f}\n",
      static_cast<long long>(rows), static_cast<long long>(batch), total_s, rows / total_s, 1e6 * post_s / rows,
      static_cast<double>(std::filesystem::file_size(db)) / rows);
  std::filesystem::remove_all(dir);
  return 0;
}
