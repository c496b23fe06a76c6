#include "experiments/grid_checks.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cstring>
#include <filesystem>

#include "experiments/cell_builder.h"
#include "experiments/error.h"

namespace htga::experiments {

namespace fs = std::filesystem;

/// The options of the run itself, before anything else.
void check_run_options(const RunOptions& o, size_t cells) {
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw InputError(fmt::format("--shard {}/{}: want I/N with 0 <= I < N", o.shard_index, o.shard_count));
  if (o.jobs < 1) throw InputError(fmt::format("--jobs {}: want 1 or more", o.jobs));
  if (o.threads < 0 || o.threads > 4096) throw InputError(fmt::format("--threads {}: want 1 to 4096", o.threads));
  if (o.flush_every < 1) throw InputError(fmt::format("--flush-every {}: want 1 or more", o.flush_every));
  if (!(o.heartbeat_seconds > 0))
    throw InputError(fmt::format("heartbeat interval {} s: want more than 0", o.heartbeat_seconds));
  // Two missed heartbeats at least, so that a busy but live process is not taken over.
  if (!(o.stale_after_s >= 3 * o.heartbeat_seconds))
    throw InputError(fmt::format("--stale-after {:g}: want at least {:g} seconds (3 heartbeats of {:g} s)",
                                 o.stale_after_s, 3 * o.heartbeat_seconds, o.heartbeat_seconds));
  if (static_cast<int64_t>(cells) > o.max_cells && !o.yes && !o.dry_run)
    throw InputError(fmt::format("{}: {} cells, more than --max-cells {}; pass --yes to run them all", o.grid_path,
                                 cells, o.max_cells));
}

/// Settings that the registry's ranges let through but no cell could train with, found before
/// anything is written: each message names the grid file and the cell.
void check_cells(const Grid& grid) {
  for (const Cell& c : grid.cells) {
    const CellSettings s = build_settings(c);
    const std::string where = grid.source + ": " + c.label;
    if (!(s.optimizer.lr <= FLT_MAX))
      throw InputError(fmt::format("{}: optimizer lr {:g} overflows float32", where, s.optimizer.lr));
    if (static_cast<float>(s.optimizer.lr) == 0.0f)  // rates live in float32 tensors
      throw InputError(fmt::format("{}: optimizer lr {:g} underflows float32 (becomes 0)", where, s.optimizer.lr));
    if (!s.optimizer.htga) continue;
    if (s.train.alpha.every == 0)
      throw InputError(grid.source + ": /defaults/alpha_every: htga needs alpha_hat; alpha_every 0 turns it off");
    try {
      optimizers::check_options(*s.optimizer.htga);
    } catch (const std::invalid_argument& e) {
      throw InputError(where + ": optimizer: " + e.what());
    }
  }
}

/// A folder htga will write into (the database's, the checkpoints') must be one or be
/// creatable: found before anything is written, not after an epoch of training. A folder that
/// does not exist yet is made and removed again, which leaves nothing behind. Throws InputError
/// whose message starts with `who`.
void check_folder(const std::string& dir, const std::string& who) {
  std::error_code ec;
  const fs::path target = fs::absolute(dir);
  fs::path existing = target;
  while (!fs::exists(existing, ec) && existing != existing.parent_path()) existing = existing.parent_path();
  if (!fs::is_directory(existing, ec))
    throw InputError(who + ": cannot create folder " + target.string() + ": " + existing.string() + " is not a folder");
  if (existing == target) {
    if (::access(target.c_str(), W_OK | X_OK) != 0)
      throw InputError(who + ": cannot write in folder " + target.string() + ": " + std::strerror(errno));
    return;
  }
  fs::create_directories(target, ec);
  if (ec) throw InputError(who + ": cannot create folder " + target.string() + ": " + ec.message());
  fs::path top = target;  // the outermost folder made here
  while (top.parent_path() != existing) top = top.parent_path();
  fs::remove_all(top, ec);
}

}  // namespace htga::experiments
