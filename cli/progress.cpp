#include "cli/progress.h"

#include <fmt/format.h>

#include <cmath>
#include <vector>

namespace htga::cli {

using experiments::CellRef;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double rate_of(int64_t step, int64_t first_step, std::chrono::steady_clock::time_point started) {
  const double secs = seconds_since(started);
  return secs > 0 ? static_cast<double>(step - first_step) / secs : 0;
}

/// The line of a cell that ended.
std::string ended_line(const experiments::CellEnded& e) {
  if (e.status == "diverged") return fmt::format("diverged ({}), {:.1f} s", e.error, e.seconds);
  if (e.status == "interrupted" || e.status == "lost") return e.error;
  if (e.status != "finished") return "FAILED: " + e.error;
  std::string text = fmt::format(
      "{}test acc {:.2f}% loss {:.4f}, {} steps, {:.1f} s",
      e.metric == "acc" || e.metric.empty() ? std::string() : fmt::format("test {} {:.4g}, ", e.metric, e.test_metric),
      100 * e.test_acc, e.test_loss, e.steps, e.seconds);
  if (e.timed_steps > 0)
    text +=
        fmt::format("; {:.3f} ms/step, alpha_hat {:.1f}%, logging {:.1f}%; evaluation {:.2f} s ({:.0f}% of the cell)",
                    1e3 * e.step_s / e.timed_steps, 100 * e.alpha_s / e.step_s, 100 * e.log_s / e.step_s, e.eval_s,
                    e.seconds > 0 ? 100 * e.eval_s / e.seconds : 0.0);
  if (!e.note.empty()) text += "; " + e.note;
  if (!e.error.empty()) text += "; " + e.error;  // e.g. restarted from the start
  return text;
}

}  // namespace

std::string format_eta(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 90) return fmt::format("{:.0f}s", s);
  if (s < 5400) return fmt::format("{:.0f}m", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

std::string LineProgress::prefix(const CellRef& c) { return fmt::format("[{}/{}] {}", c.index + 1, c.total, c.label); }

std::string LineProgress::status_of(const Active& a) {
  const double rate = rate_of(a.step, a.first_step, a.started);
  return fmt::format("step {}/{} epoch {}/{} loss {:.4f} alpha_hat {:.3f} {:.1f} steps/s ETA {}", a.step, a.total_steps,
                     a.epoch + 1, a.epochs, a.loss, a.alpha, rate,
                     format_eta(rate > 0 ? (a.total_steps - a.step) / rate : NAN));
}

void LineProgress::line(const std::string& text) { out_ << text << std::endl; }

void LineProgress::threads_chosen(const experiments::ThreadsChosen& t) {
  std::lock_guard<std::mutex> lock(mu_);
  if (t.jobs > 1)
    line(fmt::format("threads: {} per cell x {} jobs, from {}", t.per_cell, t.jobs, t.why));
  else
    line(fmt::format("threads: {}, from {}", t.per_cell, t.why));
}

void LineProgress::dataset_loaded(const experiments::DatasetLoaded& d) {
  std::lock_guard<std::mutex> lock(mu_);
  line(fmt::format("loaded {} ({} train, {} val, {} test) on {} in {:.2f} s; cache {}", d.name, d.train, d.val, d.test,
                   d.device, d.seconds, d.cache_note));
}

void LineProgress::cell_skipped(const CellRef& c, const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++skipped_;
  line(fmt::format("{}: already {}, skipped", prefix(c), status));
}

void LineProgress::cell_busy(const CellRef& c) {
  std::lock_guard<std::mutex> lock(mu_);
  line(prefix(c) + ": running in another process (fresh heartbeat), left to it");
}

void LineProgress::cell_checkpoint_bad(const CellRef& c, const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  line(prefix(c) + ": " + why);
}

void LineProgress::cell_started(const CellRef& c, const experiments::CellStarted& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (s.resumed) line(fmt::format("{}: resuming after epoch {} (step {})", prefix(c), s.from_epoch, s.from_step));
  Active a;
  a.label = prefix(c);
  a.epochs = s.epochs;
  a.total_steps = s.total_steps;
  a.step = a.first_step = s.from_step;
  a.epoch = s.from_epoch;
  a.started = std::chrono::steady_clock::now();
  active_[c.index] = a;
}

void LineProgress::cell_tick(const CellRef& c, const experiments::CellTick& t) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(c.index);
  if (it == active_.end()) return;
  it->second.step = t.step;
  it->second.epoch = t.epoch;
  it->second.loss = t.loss;
  it->second.alpha = t.alpha;
}

void LineProgress::cell_ended(const CellRef& c, const experiments::CellEnded& e) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(c.index);
  ++done_;
  line(prefix(c) + ": " + ended_line(e));
}

void LineProgress::tick(int) {
  std::lock_guard<std::mutex> lock(mu_);
  if (every_s_ <= 0 || seconds_since(last_lines_) < every_s_) return;
  last_lines_ = std::chrono::steady_clock::now();
  for (const auto& [i, a] : active_) line(a.label + ": " + status_of(a));
}

void LiveProgress::line(const std::string& text) {
  out_ << "\x1b[2K" << text << std::endl;  // over whatever the live display left there
}

void LiveProgress::draw(int jobs, bool final) {
  std::string text;
  if (drawn_ > 0) text += fmt::format("\x1b[{}A", drawn_);
  size_t lines = 0;
  if (!final) {
    for (const auto& [i, a] : active_) {
      const double frac = a.total_steps > 0 ? static_cast<double>(a.step) / static_cast<double>(a.total_steps) : 0;
      const int width = 20, fill = std::max(0, std::min(width, static_cast<int>(frac * width)));
      text += fmt::format("\x1b[2K{} [{}{}] {}\n", a.label, std::string(fill, '#'), std::string(width - fill, '.'),
                          status_of(a));
      ++lines;
    }
    text += fmt::format("\x1b[2Kgrid: {} cells done, {} training, {} jobs\n", done_ + skipped_, active_.size(), jobs);
    ++lines;
  }
  for (size_t k = lines; k < drawn_; ++k) text += "\x1b[2K\n";  // clear what is left of the old one
  if (drawn_ > lines) text += fmt::format("\x1b[{}A", drawn_ - lines);
  out_ << text << std::flush;
  drawn_ = lines;
}

void LiveProgress::tick(int jobs) {
  std::lock_guard<std::mutex> lock(mu_);
  draw(jobs, false);
}

void LiveProgress::done() {
  std::lock_guard<std::mutex> lock(mu_);
  draw(0, true);
}

void QuietProgress::cell_checkpoint_bad(const CellRef& c, const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  out_ << fmt::format("[{}/{}] {}: {}", c.index + 1, c.total, c.label, why) << std::endl;
}

void QuietProgress::cell_ended(const CellRef& c, const experiments::CellEnded& e) {
  if (e.status != "failed") return;
  std::lock_guard<std::mutex> lock(mu_);
  out_ << fmt::format("[{}/{}] {}: FAILED: {}", c.index + 1, c.total, c.label, e.error) << std::endl;
}

}  // namespace htga::cli
