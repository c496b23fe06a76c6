#pragma once
// The CLI's views of a grid run's progress (experiments::Progress):
//   LiveProgress  a terminal: a bar per cell in training, redrawn in place, and event lines;
//   LineProgress  a log file or batch job: event lines, and a line per cell in training every
//                 `every_s` seconds;
//   QuietProgress -q: only what went wrong (failed cells, unusable checkpoints).
// Each is safe to call from several threads.

#include <chrono>
#include <map>
#include <mutex>
#include <ostream>
#include <string>

#include "experiments/progress.h"

namespace htga::cli {

/// The event lines every view shares (failures are written by QuietProgress too).
class LineProgress : public experiments::Progress {
 public:
  /// `every_s`: seconds between the progress lines of cells in training (0 = none).
  explicit LineProgress(std::ostream& out, double every_s = 60) : out_(out), every_s_(every_s) {}

  void threads_chosen(const experiments::ThreadsChosen& t) override;
  void dataset_loaded(const experiments::DatasetLoaded& d) override;
  void cell_skipped(const experiments::CellRef& c, const std::string& status) override;
  void cell_busy(const experiments::CellRef& c) override;
  void cell_checkpoint_bad(const experiments::CellRef& c, const std::string& why) override;
  void cell_started(const experiments::CellRef& c, const experiments::CellStarted& s) override;
  void cell_tick(const experiments::CellRef& c, const experiments::CellTick& t) override;
  void cell_ended(const experiments::CellRef& c, const experiments::CellEnded& e) override;
  void tick(int jobs) override;

 protected:
  /// What is known of a cell in training.
  struct Active {
    std::string label;
    int64_t step = 0, total_steps = 0, epoch = 0, epochs = 0, first_step = 0;
    double loss = NAN, alpha = NAN;
    std::chrono::steady_clock::time_point started;
  };
  /// Writes a line (under the lock).
  virtual void line(const std::string& text);
  static std::string prefix(const experiments::CellRef& c);
  /// "step 10/40 epoch 1/2 loss 0.1234 alpha_hat 1.500 12.0 steps/s ETA 3s"
  static std::string status_of(const Active& a);

  std::ostream& out_;
  std::mutex mu_;
  std::map<size_t, Active> active_;  // by grid index
  int done_ = 0, skipped_ = 0;

 private:
  double every_s_;
  std::chrono::steady_clock::time_point last_lines_ = std::chrono::steady_clock::now();
};

/// A terminal: the lines of LineProgress above a live display of bars, redrawn at every tick.
class LiveProgress : public LineProgress {
 public:
  explicit LiveProgress(std::ostream& out) : LineProgress(out, 0) {}
  void tick(int jobs) override;
  void done() override;

 protected:
  void line(const std::string& text) override;

 private:
  void draw(int jobs, bool final);
  size_t drawn_ = 0;  // lines of the live display on screen
};

/// -q: nothing but failed cells and unusable checkpoints.
class QuietProgress : public experiments::Progress {
 public:
  explicit QuietProgress(std::ostream& out) : out_(out) {}
  void cell_checkpoint_bad(const experiments::CellRef& c, const std::string& why) override;
  void cell_ended(const experiments::CellRef& c, const experiments::CellEnded& e) override;

 private:
  std::ostream& out_;
  std::mutex mu_;
};

/// "12s", "5m", "1.5h"; "?" when unknown.
std::string format_eta(double seconds);

}  // namespace htga::cli
