#pragma once
// The text datasets of a grid (glue/<task>, text/sentences, squad, lm) tokenized into the tensors
// of data::Dataset: token ids and segment ids packed as [N, 2, L], or LM windows [N, L + 1].

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/data/dataset.h"

namespace htga::data {

/// True for the names this file loads: glue/..., text/sentences, squad, lm.
bool is_text_dataset(const std::string& name);

/// Checks, reading nothing, that a text dataset config's files are there. Throws InputError
/// saying where it looked and what layout it expects.
void check_text_available(const nlohmann::json& config);

/// The files a text dataset config reads.
std::vector<std::string> text_source_files(const nlohmann::json& config);

/// Reads, tokenizes and moves a text dataset to `device`. The word-level vocabulary is built from
/// the training rows only (after the validation split is carved), so nothing of validation or
/// test leaks into it.
Dataset load_text_dataset(const nlohmann::json& config, const torch::Device& device);

}  // namespace htga::data
