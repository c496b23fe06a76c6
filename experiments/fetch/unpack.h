#pragma once
// Unpacking of tar.gz and zip archives with libarchive, and the steps that turn an official
// layout into the one the loaders read (MRPC's split, Tiny ImageNet's class folders).

#include <string>

#include "experiments/fetch/registry.h"

namespace htga::fetch {

/// Unpacks the regular files and folders of `archive` under `dest` (links, devices and macOS
/// metadata are skipped). Throws FetchError for a damaged archive or an entry whose path is
/// absolute or climbs out with "..".
void unpack_archive(const std::string& archive, const std::string& dest);

/// Runs `step` on a staging folder that mirrors the data root.
void run_post_step(PostStep step, const std::string& staging_root);

}  // namespace htga::fetch
