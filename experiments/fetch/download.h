#pragma once
// Downloads with libcurl into a `.part` file that a later attempt resumes (HTTP Range), and copies
// from a local folder or file:// URL. Nothing here knows about datasets or checksums.

#include <iosfwd>
#include <string>

#include "experiments/fetch/fetch.h"

namespace htga::fetch {

struct DownloadOptions {
  long connect_timeout_s = 30;  // to open the connection
  long stall_timeout_s = 60;    // abort a transfer that moves under 1 byte/s this long
  int attempts = 3;             // transfers of one URL, each resuming where the last stopped
  bool progress = false;        // a progress bar on the error stream (a terminal)
  std::string label;            // the name the progress bar shows
};

/// A transfer that failed. `resumable`: the `.part` file holds a valid prefix that a later
/// attempt can continue (a dropped connection, a timeout); otherwise it has been removed.
class DownloadError : public FetchError {
 public:
  DownloadError(const std::string& what, bool resumable) : FetchError(what), resumable(resumable) {}
  bool resumable;
};

/// Whether `source` is fetched with libcurl (http, https, ftp) rather than read as a local path.
bool is_remote(const std::string& source);

/// Appends `url` to `part` from its current size (0 when absent) until complete. Throws
/// DownloadError with the URL and the HTTP status or libcurl's message.
void download_url(const std::string& url, const std::string& part, const DownloadOptions& options, std::ostream& err);

/// Copies the local file `source` (a path or a file:// URL) to `part`. Throws DownloadError when absent.
void copy_local(const std::string& source, const std::string& part);

}  // namespace htga::fetch
