#pragma once
// Helpers shared by the tests: a fresh temporary folder per test, small file writers.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace htga::test {

/// A folder under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("htga-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

/// The bytes of an IDX file of unsigned bytes with the given dimensions.
inline std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(d >> s));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
}

/// Ends a test that cannot run here as skipped, never as passed: it prints why and exits with
/// 77, which ctest reports as "Skipped" (the tests that call it carry a tag of their own, run by
/// a ctest entry with SKIP_RETURN_CODE 77; see CMakeLists.txt).
[[noreturn]] inline void skip(const std::string& why) {
  std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
  std::fflush(nullptr);
  std::_Exit(77);
}

inline void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

/// The whole content of a file ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

#ifdef HTGA_BINARY
/// The htga binary run with `args` (a shell command line); its exit code and stdout + stderr.
struct Result {
  int code = -1;
  std::string out;
};

/// Starts the htga binary with `args`, stdout and stderr appended to `log`; one intra-op
/// thread, so that results of separate processes compare bit for bit.
inline pid_t spawn_htga(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv{HTGA_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  // One intra-op thread: the same reductions in every process, so results compare bit for bit.
  setenv("OMP_NUM_THREADS", "1", 1);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, HTGA_BINARY, &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " HTGA_BINARY);
  return pid;
}

/// The exit status of `pid` (128 + the signal when a signal ended it).
inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline Result htga_cmd(const std::string& args, const TempDir& dir) {
  const std::string log = dir.file("cmd.log");
  const int status = std::system((std::string(HTGA_BINARY) + " " + args + " > " + log + " 2>&1").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(log)};
}
#endif

}  // namespace htga::test
