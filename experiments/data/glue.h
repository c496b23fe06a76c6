#pragma once
// The nine GLUE tasks read from a task folder as GLUE's download_glue_data.py lays it out
// (<glue_dir>/CoLA/train.tsv, .../MNLI/dev_matched.tsv, ...). The files are tab-separated and not
// quoted: a quote character is part of the text. Columns are found by their header names where
// the file has a header (all but CoLA), and the header is checked.

#include <cstdint>
#include <string>
#include <vector>

namespace htga::data {

/// One split of a text task.
struct TextSplit {
  std::vector<std::string> a;   // the sentence, or the first of a pair
  std::vector<std::string> b;   // the second of a pair; empty for single-sentence tasks
  std::vector<int64_t> labels;  // class ids (indices into label_names); empty for regression
  std::vector<float> scores;    // regression targets (STS-B, 0..5); empty for classification
  int64_t skipped = 0;          // malformed lines skipped (QQP's lines with missing fields)
  int64_t size() const { return static_cast<int64_t>(a.size()); }
};

/// A GLUE task (or a task in GLUE's single-sentence format) as read from its folder.
struct TextTask {
  std::string name;                      // "cola", "sst2", ..., as in glue/<name>
  bool pair = false;                     // examples are sentence pairs
  bool regression = false;               // scores instead of labels (STS-B)
  std::vector<std::string> label_names;  // label id -> the label as the files write it
  TextSplit train;
  TextSplit dev;                   // dev.tsv (MNLI: dev_matched.tsv); GLUE's test labels are hidden
  TextSplit dev_mismatched;        // MNLI's dev_mismatched.tsv; empty for the other tasks
  std::vector<std::string> files;  // the files read
};

/// The task names of a grid's glue/<name>: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli.
const std::vector<std::string>& glue_task_names();

/// The folder name of a task in the official download: "CoLA", "SST-2", "MRPC", "QQP", "STS-B",
/// "MNLI", "QNLI", "RTE", "WNLI". Throws InputError for an unknown task, listing the valid ones.
std::string glue_folder_name(const std::string& task);

/// The files a task reads inside its folder: train.tsv and dev.tsv (MNLI: train.tsv,
/// dev_matched.tsv, dev_mismatched.tsv).
std::vector<std::string> glue_file_names(const std::string& task);

/// Throws InputError, saying where it looked and which files it expects, unless `folder` holds
/// the task's files. Reads nothing.
void check_glue_folder(const std::string& task, const std::string& folder);

/// Reads a task's training and dev files. Throws InputError naming the file, the line and the
/// problem (a missing column, a wrong number of fields, a label outside the task's labels, a
/// score that is not a number in 0..5). QQP's lines with missing or extra fields are skipped and
/// counted in TextSplit::skipped, as GLUE's reference code does; elsewhere they are errors.
TextTask read_glue(const std::string& task, const std::string& folder);

/// A task in GLUE's single-sentence format (SST-2's `sentence\tlabel` with that header) with any
/// labels: `folder`/train.tsv and `folder`/dev.tsv. The label names are the training labels
/// sorted (numerically when all are integers); a dev label not among them is an error.
TextTask read_sentence_task(const std::string& folder, const std::string& name);

}  // namespace htga::data
