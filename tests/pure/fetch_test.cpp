// htga data fetch against a local HTTP server (Python's http.server with a handler that can drop
// a connection halfway and honours Range), serving archives this test makes in each dataset's
// real layout. The registry's checksums are those of the real files, so each test passes a copy
// of the real entry whose checksums are those of the test's archives.

#include "experiments/fetch/fetch.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "cli/cmd_data.h"
#include "experiments/error.h"
#include "experiments/fetch/hash.h"
#include "experiments/fetch/unpack.h"
#include "experiments/registry.h"
#include "experiments/stop.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace htga::fetch;
using htga::test::TempDir;

namespace {

using Files = std::map<std::string, std::string>;  // path in the archive -> content

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A tar.gz or zip archive of `files`, made with libarchive.
void make_archive(const fs::path& path, const Files& files, bool zip) {
  fs::create_directories(path.parent_path());
  archive* a = archive_write_new();
  if (zip) {
    archive_write_set_format_zip(a);
  } else {
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
  }
  REQUIRE(archive_write_open_filename(a, path.c_str()) == ARCHIVE_OK);
  for (const auto& [name, content] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

/// A copy of the real entry whose checksums are the SHA-256 of the files the test serves.
DatasetEntry with_test_checksums(const std::string& name, const fs::path& served) {
  DatasetEntry e = find_dataset(name);
  for (RemoteFile& f : e.files) {
    const fs::path p = served / url_file_name(f.urls.at(0));
    f.checksums = {{HashKind::kSha256, file_digest(p.string(), HashKind::kSha256), "test"}};
    f.local.clear();
  }
  return e;
}

/// Every path under `dir` (hidden ones too) with its size: "as it was" means this is equal.
std::map<std::string, uintmax_t> snapshot(const fs::path& dir) {
  std::map<std::string, uintmax_t> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[fs::relative(e.path(), dir).string()] = e.is_regular_file() ? e.file_size() : 0;
  return out;
}

const char* kServerScript = R"PY(
import http.server, os, socket, sys
root, port_file, log_file = sys.argv[1:4]
dropped = set()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_GET(self):
        path = self.path.split("?")[0].lstrip("/")
        drop = path.startswith("drop/")
        if drop: path = path[len("drop/"):]
        rng = self.headers.get("Range")
        with open(log_file, "a") as f: f.write("%s %s\n" % (self.path, rng or "-"))
        full = os.path.join(root, path)
        if not os.path.isfile(full):
            body = b"not found"
            self.send_response(404); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body); return
        data = open(full, "rb").read()
        start = int(rng[len("bytes="):].split("-")[0]) if rng else 0
        if start >= len(data) and start > 0:
            self.send_response(416); self.send_header("Content-Length", "0"); self.end_headers(); return
        if rng:
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        if drop and path not in dropped:  # the first time: half the body, then the connection drops
            dropped.add(path)
            self.wfile.write(body[:len(body) // 2]); self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f: f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
)PY";

/// A Python HTTP server on 127.0.0.1 serving `root`, stopped (by its pid) when this goes.
class HttpServer {
 public:
  HttpServer(const fs::path& root, const fs::path& work) : log_((work / "server.log").string()) {
    const std::string script = (work / "server.py").string(), port_file = (work / "port").string();
    write_file(script, kServerScript);
    pid_ = fork();
    if (pid_ == 0) {
      // Not the test's stdout (a pipe reader would wait for it), and gone with the test even if
      // the test dies without running destructors.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      execlp("python3", "python3", script.c_str(), root.c_str(), port_file.c_str(), log_.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    if (!fs::exists(port_file)) {
      stop();
      FAIL("the test's HTTP server did not start (python3 on PATH?)");
    }
    port_ = std::stoi(read_text(port_file));
  }
  ~HttpServer() { stop(); }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return fs::exists(log_) ? read_text(log_) : ""; }

 private:
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

/// A CIFAR-10 archive in the official layout: cifar-10-batches-bin/ with 6 batches of 2 records.
Files cifar10_files() {
  Files f;
  std::string record(1 + 3072, '\x07');
  record[0] = 3;
  for (int i = 1; i <= 5; ++i) f["cifar-10-batches-bin/data_batch_" + std::to_string(i) + ".bin"] = record + record;
  f["cifar-10-batches-bin/test_batch.bin"] = record;
  f["cifar-10-batches-bin/batches.meta.txt"] = "airplane\nautomobile\n";
  return f;
}

FetchOptions options_for(const fs::path& root, const std::string& mirror) {
  FetchOptions o;
  o.root = root.string();
  o.mirror = mirror;
  o.attempts = 3;
  o.connect_timeout_s = 5;
  o.stall_timeout_s = 5;
  return o;
}

}  // namespace

TEST_CASE("every dataset the loaders know has a fetch entry or a stated reason", "[fetch]") {
  std::set<std::string> covered;
  for (const DatasetEntry& e : datasets()) covered.insert(e.loaders.begin(), e.loaders.end());
  for (const NotFetched& n : loaders_not_fetched()) {
    CHECK_FALSE(n.reason.empty());
    covered.insert(n.loader);
  }
  for (const auto& entry : htga::experiments::datasets().entries) {
    INFO(entry.name);
    CHECK(covered.count(entry.name) == 1);
  }
}

TEST_CASE("the registry: names, URLs and checksums well formed", "[fetch]") {
  std::set<std::string> names, folders;
  for (const DatasetEntry& e : datasets()) {
    INFO(e.name);
    CHECK(names.insert(e.name).second);
    CHECK(folders.insert(e.folder).second);
    CHECK_FALSE(e.licence.empty());
    CHECK_FALSE(e.expected.empty());
    CHECK(e.files.empty() == !e.not_fetchable.empty());
    std::set<std::string> file_names;
    for (const RemoteFile& f : e.files) {
      REQUIRE_FALSE(f.urls.empty());
      CHECK(file_names.insert(url_file_name(f.urls[0])).second);
      for (const std::string& u : f.urls) CHECK((u.rfind("https://", 0) == 0 || u.rfind("http://", 0) == 0));
      CHECK((!f.checksums.empty() || !f.unknown_reason.empty()));
      for (const Checksum& c : f.checksums) {
        CHECK(c.hex.size() == (c.kind == HashKind::kMd5 ? 32u : 64u));
        CHECK(c.hex.find_first_not_of("0123456789abcdef") == std::string::npos);
        CHECK_FALSE(c.source.empty());
      }
    }
  }
  for (const char* n : {"cifar10", "cifar100", "mnist", "fashion-mnist", "glue", "squad", "wikitext-2", "wikitext-103",
                        "imagenette", "imagenette-320", "tiny-imagenet", "imagenet"})
    CHECK(names.count(n) == 1);
  CHECK(url_file_name("https://a.b/c/d.zip?alt=media#x") == "d.zip");
  CHECK_THROWS_AS(find_dataset("cifar11"), htga::InputError);
}

TEST_CASE("the shipped grids' paths are where fetch puts the data", "[fetch]") {
  CHECK(find_dataset("cifar10").grid_path == "data/cifar-10-batches-bin");
  CHECK(find_dataset("cifar100").grid_path == "data/cifar-100-binary");
  CHECK(find_dataset("imagenette").grid_path == "data/imagenette2-160");
  const std::string grid = read_text(fs::path(HTGA_SOURCE_DIR) / "experiments/grids/cifar10-resnet20.json");
  CHECK(grid.find("\"data/cifar-10-batches-bin\"") != std::string::npos);
  const std::string imagenette = read_text(fs::path(HTGA_SOURCE_DIR) / "experiments/grids/imagenette-resnet18.json");
  CHECK(imagenette.find("\"data/imagenette2-160\"") != std::string::npos);
}

TEST_CASE("fetch cifar10 over HTTP: verified, unpacked, exactly the loader's layout", "[fetch]") {
  TempDir dir("fetch-cifar");
  const fs::path served = dir.file("served"), root = dir.file("data");
  make_archive(served / "cifar-10-binary.tar.gz", cifar10_files(), /*zip=*/false);
  HttpServer server(served, dir.file("."));
  const DatasetEntry entry = with_test_checksums("cifar10", served);
  std::ostringstream err;
  const FetchResult r = fetch_dataset(entry, options_for(root, server.url()), err);
  CHECK_FALSE(r.already_present);
  CHECK(r.unverified.empty());
  for (const auto& [name, content] : cifar10_files()) CHECK(read_text(root / name) == content);
  std::set<std::string> top;
  for (const auto& e : fs::directory_iterator(root)) top.insert(e.path().filename().string());
  CHECK(top == std::set<std::string>{"cifar-10-batches-bin"});  // the staging folder is gone
  CHECK(fs::exists(root / "cifar-10-batches-bin" / kManifestName));
  CHECK(dataset_status(entry, root.string()).complete);
  CHECK(verify_dataset(entry, root.string()).good());
  // A second fetch finds it complete and downloads nothing.
  const size_t requests = server.log().size();
  CHECK(fetch_dataset(entry, options_for(root, server.url()), err).already_present);
  CHECK(server.log().size() == requests);
  // A changed file is found by verify.
  write_file(root / "cifar-10-batches-bin/test_batch.bin", "x");
  const VerifyResult v = verify_dataset(entry, root.string());
  REQUIRE_FALSE(v.good());
  CHECK(v.problems.front().find("test_batch.bin: changed since it was fetched") != std::string::npos);
}

TEST_CASE("a corrupted archive: checksum mismatch, a clear error, data/ as it was", "[fetch]") {
  TempDir dir("fetch-mismatch");
  const fs::path served = dir.file("served"), root = dir.file("data");
  make_archive(served / "cifar-10-binary.tar.gz", cifar10_files(), false);
  const DatasetEntry entry = with_test_checksums("cifar10", served);
  write_file(served / "cifar-10-binary.tar.gz", "not the archive the checksum belongs to");
  write_file(root / "mine.txt", "the user's own file");
  const auto before = snapshot(root);
  HttpServer server(served, dir.file("."));
  std::ostringstream err;
  try {
    fetch_dataset(entry, options_for(root, server.url()), err);
    FAIL("no error");
  } catch (const FetchError& e) {
    const std::string what = e.what();
    CHECK(what.find("cifar-10-binary.tar.gz") != std::string::npos);
    CHECK(what.find("checksum mismatch") != std::string::npos);
    CHECK(what.find("deleted") != std::string::npos);
  }
  CHECK(snapshot(root) == before);
}

TEST_CASE("a 404: a clear error naming the URL, data/ as it was", "[fetch]") {
  TempDir dir("fetch-404");
  const fs::path served = dir.file("served"), root = dir.file("data");
  make_archive(dir.file("elsewhere/cifar-10-binary.tar.gz"), cifar10_files(), false);
  const DatasetEntry entry = with_test_checksums("cifar10", dir.file("elsewhere"));
  fs::create_directories(served);
  fs::create_directories(root);
  HttpServer server(served, dir.file("."));
  std::ostringstream err;
  try {
    fetch_dataset(entry, options_for(root, server.url()), err);
    FAIL("no error");
  } catch (const FetchError& e) {
    const std::string what = e.what();
    CHECK(what.find(server.url() + "/cifar-10-binary.tar.gz: HTTP 404") != std::string::npos);
    CHECK(what.find("the data root is unchanged") != std::string::npos);
    CHECK(what.find("--mirror") != std::string::npos);
  }
  CHECK(snapshot(root).empty());
  // A data root that did not exist does not exist after a failure either.
  CHECK_THROWS_AS(fetch_dataset(entry, options_for(dir.file("new-root"), server.url()), err), FetchError);
  CHECK_FALSE(fs::exists(dir.file("new-root")));
}

TEST_CASE("a connection dropped halfway: the download resumes with Range and completes", "[fetch]") {
  TempDir dir("fetch-resume");
  const fs::path served = dir.file("served"), root = dir.file("data");
  Files big = cifar10_files();
  big["cifar-10-batches-bin/data_batch_1.bin"] = std::string(200000, '\x01');  // enough to be cut
  make_archive(served / "cifar-10-binary.tar.gz", big, false);
  HttpServer server(served, dir.file("."));
  const DatasetEntry entry = with_test_checksums("cifar10", served);
  std::ostringstream err;
  fetch_dataset(entry, options_for(root, server.url() + "/drop"), err);
  CHECK(read_text(root / "cifar-10-batches-bin/data_batch_1.bin") == big["cifar-10-batches-bin/data_batch_1.bin"]);
  const std::string log = server.log();
  CHECK(log.find("/drop/cifar-10-binary.tar.gz -") != std::string::npos);
  CHECK(log.find("/drop/cifar-10-binary.tar.gz bytes=") != std::string::npos);
  CHECK(err.str().find("resuming from byte") != std::string::npos);
}

TEST_CASE("Ctrl-C during a download: Interrupted, the data root unchanged", "[fetch]") {
  TempDir dir("fetch-stop");
  const fs::path served = dir.file("served"), root = dir.file("data");
  make_archive(served / "cifar-10-binary.tar.gz", cifar10_files(), false);
  HttpServer server(served, dir.file("."));
  const DatasetEntry entry = with_test_checksums("cifar10", served);
  fs::create_directories(root);
  std::ostringstream err;
  htga::experiments::request_stop();  // as the SIGINT handler does
  CHECK_THROWS_WITH(fetch_dataset(entry, options_for(root, server.url()), err),
                    Catch::Contains("interrupted") && Catch::Contains("resumes on the next fetch"));
  htga::experiments::reset_stop();
  CHECK_FALSE(fs::exists(root / "cifar-10-batches-bin"));
  // The next fetch completes.
  fetch_dataset(entry, options_for(root, server.url()), err);
  CHECK(fs::exists(root / "cifar-10-batches-bin/test_batch.bin"));
}

TEST_CASE("a dropped download with no retries left keeps its .part, and the next fetch resumes it", "[fetch]") {
  TempDir dir("fetch-resume-later");
  const fs::path served = dir.file("served"), root = dir.file("data");
  make_archive(served / "cifar-10-binary.tar.gz", cifar10_files(), false);
  HttpServer server(served, dir.file("."));
  const DatasetEntry entry = with_test_checksums("cifar10", served);
  FetchOptions o = options_for(root, server.url() + "/drop");
  o.attempts = 1;
  std::ostringstream err;
  CHECK_THROWS_AS(fetch_dataset(entry, o, err), FetchError);
  CHECK_FALSE(fs::exists(root / "cifar-10-batches-bin"));
  CHECK(fs::exists(root / kStagingDir / "cifar-10-binary.tar.gz.part"));
  fetch_dataset(entry, o, err);
  CHECK(dataset_status(entry, root.string()).complete);
  CHECK(server.log().find("bytes=") != std::string::npos);
  CHECK_FALSE(fs::exists(root / kStagingDir));
}

TEST_CASE("mnist from a local folder mirror: the gz files kept as the loader reads them", "[fetch]") {
  TempDir dir("fetch-mnist");
  const fs::path mirror = dir.file("mirror"), root = dir.file("data");
  for (const char* n : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    write_file(mirror / n, std::string("gz bytes of ") + n);
  const DatasetEntry entry = with_test_checksums("mnist", mirror);
  std::ostringstream err;
  fetch_dataset(entry, options_for(root, mirror.string()), err);
  CHECK(read_text(root / "mnist/t10k-labels-idx1-ubyte.gz") == "gz bytes of t10k-labels-idx1-ubyte.gz");
  CHECK(verify_dataset(entry, root.string()).good());
  // file:// works the same; --force replaces the folder.
  FetchOptions o = options_for(root, "file://" + mirror.string());
  o.force = true;
  CHECK_FALSE(fetch_dataset(entry, o, err).already_present);
  // The real entry's published checksums do not match these bytes: verify says so.
  const VerifyResult v = verify_dataset(find_dataset("mnist"), root.string());
  CHECK_FALSE(v.good());
  CHECK(v.problems.front().find("does not match the published") != std::string::npos);
}

TEST_CASE("glue: the task zips unpacked and MRPC split as download_glue_data.py does", "[fetch]") {
  TempDir dir("fetch-glue");
  const fs::path mirror = dir.file("mirror"), root = dir.file("data");
  const std::pair<const char*, const char*> zips[] = {
      {"CoLA.zip", "CoLA"}, {"SST-2.zip", "SST-2"}, {"QQP-clean.zip", "QQP"}, {"STS-B.zip", "STS-B"},
      {"MNLI.zip", "MNLI"}, {"QNLIv2.zip", "QNLI"}, {"RTE.zip", "RTE"},       {"WNLI.zip", "WNLI"}};
  for (const auto& [zip, folder] : zips) {
    Files f;
    const std::string task = folder;
    f[task + "/train.tsv"] = "train of " + task;
    for (const char* d : task == "MNLI" ? std::vector<const char*>{"dev_matched.tsv", "dev_mismatched.tsv"}
                                        : std::vector<const char*>{"dev.tsv"})
      f[task + "/" + d] = "dev";
    make_archive(mirror / zip, f, /*zip=*/true);
  }
  const std::string header = "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String";
  write_file(mirror / "msr_paraphrase_train.txt", header + "\r\n1\t10\t11\tA b.\tA  b .\r\n0\t20\t21\tC.\tD.\r\n");
  write_file(mirror / "msr_paraphrase_test.txt", header + "\r\n1\t30\t31\tE.\tF.\r\n");
  write_file(mirror / "mrpc_dev_ids.tsv", "20\t21\r\n");
  const DatasetEntry entry = with_test_checksums("glue", mirror);
  std::ostringstream err;
  fetch_dataset(entry, options_for(root, mirror.string()), err);
  CHECK(read_text(root / "glue/CoLA/train.tsv") == "train of CoLA");
  CHECK(fs::exists(root / "glue/MNLI/dev_mismatched.tsv"));
  CHECK(read_text(root / "glue/MRPC/train.tsv") == header + "\n1\t10\t11\tA b.\tA  b .\n");
  CHECK(read_text(root / "glue/MRPC/dev.tsv") == header + "\n0\t20\t21\tC.\tD.\n");
  CHECK(read_text(root / "glue/MRPC/test.tsv") == "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t30\t31\tE.\tF.\n");
  CHECK(dataset_status(entry, root.string()).complete);
  CHECK(verify_dataset(entry, root.string()).good());
}

TEST_CASE("tiny-imagenet: rearranged into train/<class> and val/<class> folders", "[fetch]") {
  TempDir dir("fetch-tiny");
  const fs::path mirror = dir.file("mirror"), root = dir.file("data");
  Files f{{"tiny-imagenet-200/wnids.txt", "n01\nn02\n"},
          {"tiny-imagenet-200/train/n01/images/n01_0.JPEG", "a"},
          {"tiny-imagenet-200/train/n01/n01_boxes.txt", "boxes"},
          {"tiny-imagenet-200/train/n02/images/n02_0.JPEG", "b"},
          {"tiny-imagenet-200/val/images/val_0.JPEG", "c"},
          {"tiny-imagenet-200/val/images/val_1.JPEG", "d"},
          {"tiny-imagenet-200/val/val_annotations.txt", "val_0.JPEG\tn02\t0\t0\t63\t63\nval_1.JPEG\tn01\t1\t1\t9\t9\n"},
          {"tiny-imagenet-200/test/images/test_0.JPEG", "e"}};
  make_archive(mirror / "tiny-imagenet-200.zip", f, true);
  const DatasetEntry entry = with_test_checksums("tiny-imagenet", mirror);
  std::ostringstream err;
  fetch_dataset(entry, options_for(root, mirror.string()), err);
  const fs::path t = root / "tiny-imagenet-200";
  CHECK(read_text(t / "train/n01/n01_0.JPEG") == "a");
  CHECK_FALSE(fs::exists(t / "train/n01/images"));
  CHECK(read_text(t / "val/n02/val_0.JPEG") == "c");
  CHECK(read_text(t / "val/n01/val_1.JPEG") == "d");
  CHECK_FALSE(fs::exists(t / "val/images"));
}

TEST_CASE("an archive entry that climbs out of the folder is refused", "[fetch]") {
  TempDir dir("fetch-evil");
  make_archive(dir.file("evil.tar.gz"), {{"../evil.txt", "x"}}, false);
  CHECK_THROWS_WITH(unpack_archive(dir.file("evil.tar.gz"), dir.file("out")),
                    Catch::Contains("climbs out of the folder"));
  CHECK_FALSE(fs::exists(dir.file("evil.txt")));
}

TEST_CASE("imagenet explains where to get it; a folder in the way is not overwritten", "[fetch]") {
  TempDir dir("fetch-manual");
  std::ostringstream err;
  CHECK_THROWS_WITH(fetch_dataset(find_dataset("imagenet"), options_for(dir.file("data"), ""), err),
                    Catch::Contains("https://image-net.org") && Catch::Contains("htga pack") &&
                        Catch::Contains("{\"name\": \"packed\""));
  write_file(dir.file("data/cifar-10-batches-bin/data_batch_1.bin"), "mine");
  CHECK_THROWS_WITH(fetch_dataset(find_dataset("cifar10"), options_for(dir.file("data"), "/nowhere"), err),
                    Catch::Contains("present but incomplete") && Catch::Contains("--force"));
  CHECK(read_text(dir.file("data/cifar-10-batches-bin/data_batch_1.bin")) == "mine");
}

TEST_CASE("the checksum override file and the mirror-only rule", "[fetch]") {
  TempDir dir("fetch-override");
  const std::string sha(64, 'a');
  write_file(dir.file("sums"), "# test\n" + sha + "  some/where/cifar-10-binary.tar.gz\n");
  const auto m = read_checksum_override(dir.file("sums"));
  REQUIRE(m.size() == 1);
  CHECK(m.at("cifar-10-binary.tar.gz") == sha);
  write_file(dir.file("bad"), "abc  x.zip\n");
  CHECK_THROWS_AS(read_checksum_override(dir.file("bad")), htga::InputError);
  // With a mirror the override replaces the published checksum, and it is announced.
  const fs::path mirror = dir.file("mirror"), root = dir.file("data");
  make_archive(mirror / "cifar-10-binary.tar.gz", cifar10_files(), false);
  FetchOptions o = options_for(root, mirror.string());
  o.checksum_override = {
      {"cifar-10-binary.tar.gz", file_digest((mirror / "cifar-10-binary.tar.gz").string(), HashKind::kSha256)}};
  std::ostringstream err;
  fetch_dataset(find_dataset("cifar10"), o, err);
  CHECK(err.str().find("WARNING") != std::string::npos);
  const VerifyResult v = verify_dataset(find_dataset("cifar10"), root.string());
  REQUIRE_FALSE(v.notes.empty());
  CHECK(v.notes.front().find("testing only") != std::string::npos);
}

TEST_CASE("htga data list and verify (the CLI's functions)", "[fetch]") {
  TempDir dir("fetch-cli");
  const fs::path mirror = dir.file("mirror"), root = dir.file("data");
  make_archive(mirror / "cifar-10-binary.tar.gz", cifar10_files(), false);
  htga::cli::DataFetchOptions o;
  o.names = {"cifar10"};
  o.fetch = options_for(root, mirror.string());
  o.fetch.checksum_override = {
      {"cifar-10-binary.tar.gz", file_digest((mirror / "cifar-10-binary.tar.gz").string(), HashKind::kSha256)}};
  std::ostringstream out, err;
  CHECK(htga::cli::run_data_fetch(o, out, err) == 0);
  CHECK(out.str().find("cifar10: fetched into") != std::string::npos);
  CHECK(out.str().find("data/cifar-10-batches-bin") != std::string::npos);
  std::ostringstream list;
  htga::cli::run_data_list(root.string(), list);
  std::string cifar_line, mnist_line;
  std::istringstream lines(list.str());
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("cifar10 ", 0) == 0) cifar_line = line;
    if (line.rfind("mnist ", 0) == 0) mnist_line = line;
  }
  CHECK(cifar_line.find("complete") != std::string::npos);
  CHECK(cifar_line.find("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz") != std::string::npos);
  CHECK(mnist_line.find("absent") != std::string::npos);
  CHECK(mnist_line.find("CC BY-SA 3.0") != std::string::npos);
  std::ostringstream verify;
  CHECK(htga::cli::run_data_verify({"cifar10"}, root.string(), verify) == 0);
  CHECK(verify.str().find("cifar10: verified") != std::string::npos);
  std::ostringstream missing;
  CHECK(htga::cli::run_data_verify({"mnist"}, root.string(), missing) == 1);
  CHECK_THROWS_AS(htga::cli::run_data_verify({"nope"}, root.string(), missing), htga::InputError);
}

TEST_CASE("a file with no published checksum is kept, announced and recorded as unverified", "[fetch]") {
  TempDir dir("fetch-unverified");
  const fs::path mirror = dir.file("mirror"), root = dir.file("data");
  make_archive(mirror / "cifar-10-binary.tar.gz", cifar10_files(), false);
  DatasetEntry entry = find_dataset("cifar10");
  entry.files[0].checksums.clear();
  entry.files[0].unknown_reason = "none published (a test)";
  std::ostringstream err;
  const FetchResult r = fetch_dataset(entry, options_for(root, mirror.string()), err);
  CHECK(r.unverified == std::vector<std::string>{"cifar-10-binary.tar.gz"});
  CHECK(err.str().find("no published checksum (none published (a test)); kept unverified, sha256 ") !=
        std::string::npos);
  const VerifyResult v = verify_dataset(entry, root.string());
  CHECK(v.good());
  REQUIRE_FALSE(v.notes.empty());
  CHECK(v.notes.front().find("cifar-10-binary.tar.gz was fetched unverified") != std::string::npos);
}
