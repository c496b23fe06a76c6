#pragma once
// Where one cell's rows go: the process's storage::Writer, fenced by the cell's claim. Every
// write is queued (training never waits for SQLite) and conditional on still holding the claim;
// a write that finds the claim lost (another process took the cell over) writes nothing and
// marks the cell lost, which the training loop sees at its next flush and stops quietly.

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "storage/store.h"
#include "storage/writer.h"

namespace htga::experiments {

class CellWriter {
 public:
  CellWriter(storage::Writer& writer, const storage::Fence& fence) : writer_(writer), fence_(fence) {}

  int64_t run_id() const { return fence_.run_id; }
  const storage::Fence& fence() const { return fence_; }
  /// A write found that another process holds the cell now.
  bool lost() const { return lost_.load(std::memory_order_relaxed); }

  void steps(std::vector<storage::StepRow> rows);
  void layer_alphas(std::vector<storage::LayerAlphaRow> rows);
  void layers(std::vector<storage::LayerInfo> layers);
  void eval(const storage::EvalRow& row, std::vector<storage::MetricRow> metrics);
  void heartbeat();
  /// Records checkpoint `file` (written after `epoch` at `step`), then removes `previous`; when
  /// the claim is lost, removes `file` instead (it is nobody's).
  void checkpoint(const std::string& file, int64_t epoch, int64_t step, const std::string& previous);
  /// Waits for every queued write; throws a write's error other than a lost claim.
  void sync();

 private:
  /// Queues `job`, turning a lost claim into the flag.
  template <class F>
  void post(F job);

  storage::Writer& writer_;
  storage::Fence fence_;
  std::atomic<bool> lost_{false};
};

}  // namespace htga::experiments
