#include "experiments/fetch/download.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <ostream>

#include "experiments/error.h"
#include "experiments/stop.h"

namespace htga::fetch {

namespace fs = std::filesystem;

namespace {

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

/// Where the body goes. The first chunk decides: an error page is not written, and a server
/// that ignored the Range request (200 instead of 206) restarts the file from its beginning.
struct Sink {
  CURL* curl = nullptr;
  std::string path;
  int64_t offset = 0;  // bytes already in the file when the request was sent
  std::FILE* file = nullptr;
  bool decided = false;
  long status = 0;
  std::string error;
};

size_t write_body(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  if (!sink->decided) {
    sink->decided = true;
    curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &sink->status);
    if (sink->status >= 400) return size * count;  // an error page: read, not kept
    const bool restart = sink->offset > 0 && sink->status == 200;
    sink->file = std::fopen(sink->path.c_str(), restart ? "wb" : "ab");
    if (!sink->file) {
      sink->error = sink->path + ": cannot write";
      return 0;
    }
  }
  if (!sink->file) return size * count;
  return std::fwrite(data, size, count, sink->file) * size;
}

struct Progress {
  bool show = false;  // draw the bar (stderr is a terminal)
  std::ostream* err = nullptr;
  std::string label;
  int64_t offset = 0;
  std::chrono::steady_clock::time_point last;
};

int show_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  if (experiments::stop_requested()) return 1;  // Ctrl-C: curl stops with CURLE_ABORTED_BY_CALLBACK
  auto* p = static_cast<Progress*>(user);
  const auto t = std::chrono::steady_clock::now();
  const double done = static_cast<double>(p->offset + now) / 1e6;
  if (!p->show) {  // not a terminal (a log): a line every 30 s of a long download
    if (t - p->last < std::chrono::seconds(30)) return 0;
    p->last = t;
    if (total > 0)
      *p->err << "  " << p->label << ": " << static_cast<int64_t>(done) << " of "
              << static_cast<int64_t>(static_cast<double>(p->offset + total) / 1e6) << " MB" << std::endl;
    else
      *p->err << "  " << p->label << ": " << static_cast<int64_t>(done) << " MB" << std::endl;
    return 0;
  }
  if (t - p->last < std::chrono::milliseconds(200) && !(total > 0 && now == total)) return 0;
  p->last = t;
  char line[160];
  if (total > 0) {
    const double all = static_cast<double>(p->offset + total) / 1e6;
    const int width = 30, filled = static_cast<int>(width * done / all);
    std::snprintf(line, sizeof line, "\r  %-28.28s [%-*.*s] %5.1f%% %8.1f / %.1f MB", p->label.c_str(), width, filled,
                  "##############################", 100.0 * done / all, done, all);
  } else {
    std::snprintf(line, sizeof line, "\r  %-28.28s %8.1f MB", p->label.c_str(), done);
  }
  *p->err << line << std::flush;
  return 0;
}

bool resumable_code(CURLcode c) {
  return c == CURLE_PARTIAL_FILE || c == CURLE_RECV_ERROR || c == CURLE_OPERATION_TIMEDOUT || c == CURLE_GOT_NOTHING ||
         c == CURLE_SEND_ERROR;
}

int64_t size_of(const std::string& path) {
  std::error_code ec;
  const auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

/// One request for the rest of `part`. Returns normally when the file is complete.
void transfer_once(CURL* curl, const std::string& url, const std::string& part, const DownloadOptions& o,
                   std::ostream& err) {
  Sink sink;
  sink.curl = curl;
  sink.path = part;
  sink.offset = size_of(part);
  Progress progress{o.progress, &err, o.label, sink.offset, std::chrono::steady_clock::now()};
  char message[CURL_ERROR_SIZE] = "";
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, o.stall_timeout_s);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "htga-data-fetch");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(sink.offset));
  // Called about once a second, shown or not: a stop request aborts the transfer.
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, show_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &progress);
  const CURLcode code = curl_easy_perform(curl);
  if (sink.file) std::fclose(sink.file);
  if (o.progress) err << "\n";
  long status = sink.status;
  if (!sink.decided) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (!sink.error.empty()) throw DownloadError(sink.error, false);
  if (code == CURLE_ABORTED_BY_CALLBACK && experiments::stop_requested())
    throw Interrupted(url + ": interrupted; the partial download " + part + " resumes on the next fetch");
  if (status == 416 && sink.offset > 0) {  // the part is as long as the file, or longer: start again
    fs::remove(part);
    throw DownloadError(url + ": HTTP 416 on resume; restarting", true);
  }
  if (status >= 400) {
    if (sink.offset == 0) fs::remove(part);
    throw DownloadError(url + ": HTTP " + std::to_string(status), false);
  }
  if (code != CURLE_OK)
    throw DownloadError(url + ": " + (message[0] ? message : curl_easy_strerror(code)), resumable_code(code));
  if (!fs::exists(part)) std::fclose(std::fopen(part.c_str(), "ab"));  // an empty file is a file
}

}  // namespace

bool is_remote(const std::string& source) {
  for (const char* scheme : {"http://", "https://", "ftp://"})
    if (source.rfind(scheme, 0) == 0) return true;
  return false;
}

void download_url(const std::string& url, const std::string& part, const DownloadOptions& options, std::ostream& err) {
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (init != CURLE_OK) throw DownloadError(std::string("libcurl: ") + curl_easy_strerror(init), false);
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) throw DownloadError("libcurl: cannot start a transfer", false);
  for (int attempt = 1;; ++attempt) {
    try {
      transfer_once(curl.get(), url, part, options, err);
      return;
    } catch (const DownloadError& e) {
      if (!e.resumable || attempt >= options.attempts) throw;
      err << "htga: " << e.what() << "; resuming from byte " << size_of(part) << " (attempt " << attempt + 1 << " of "
          << options.attempts << ")\n";
    }
  }
}

void copy_local(const std::string& source, const std::string& part) {
  const std::string path = source.rfind("file://", 0) == 0 ? source.substr(7) : source;
  if (!fs::is_regular_file(path)) throw DownloadError(path + ": no such file", false);
  std::error_code ec;
  fs::copy_file(path, part, fs::copy_options::overwrite_existing, ec);
  if (ec) throw DownloadError(path + ": cannot copy to " + part + ": " + ec.message(), false);
}

}  // namespace htga::fetch
