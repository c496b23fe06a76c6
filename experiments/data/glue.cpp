#include "experiments/data/glue.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "experiments/error.h"

namespace htga::data {

namespace fs = std::filesystem;

namespace {

/// How one task's files are laid out.
struct TaskSpec {
  std::string name, folder;
  // Header-less files (CoLA) name their columns by position: the count and the indices below.
  bool header = true;
  size_t fields = 0, a_index = 0, label_index = 0;
  std::string a, b, label;               // header names of the columns read ("" b: single sentence)
  std::string official_header;           // for messages: the header GLUE's files have
  std::vector<std::string> label_names;  // empty: regression, or any label (single-sentence format)
  bool regression = false;
  bool skip_malformed = false;  // QQP
};

const std::vector<TaskSpec>& specs() {
  static const std::vector<TaskSpec> s = [] {
    const std::vector<std::string> binary{"0", "1"};
    const std::vector<std::string> entail{"entailment", "not_entailment"};
    std::vector<TaskSpec> v;
    TaskSpec cola;
    cola.name = "cola", cola.folder = "CoLA", cola.header = false, cola.fields = 4, cola.a_index = 3,
    cola.label_index = 1, cola.official_header = "source, label, original mark, sentence (no header line)",
    cola.label_names = binary;
    v.push_back(cola);
    TaskSpec sst2;
    sst2.name = "sst2", sst2.folder = "SST-2", sst2.a = "sentence", sst2.label = "label",
    sst2.official_header = "sentence, label", sst2.label_names = binary;
    v.push_back(sst2);
    TaskSpec mrpc;
    mrpc.name = "mrpc", mrpc.folder = "MRPC", mrpc.a = "#1 String", mrpc.b = "#2 String", mrpc.label = "Quality",
    mrpc.official_header = "Quality, #1 ID, #2 ID, #1 String, #2 String", mrpc.label_names = binary;
    v.push_back(mrpc);
    TaskSpec qqp;
    qqp.name = "qqp", qqp.folder = "QQP", qqp.a = "question1", qqp.b = "question2", qqp.label = "is_duplicate",
    qqp.official_header = "id, qid1, qid2, question1, question2, is_duplicate", qqp.label_names = binary,
    qqp.skip_malformed = true;
    v.push_back(qqp);
    TaskSpec stsb;
    stsb.name = "stsb", stsb.folder = "STS-B", stsb.a = "sentence1", stsb.b = "sentence2", stsb.label = "score",
    stsb.official_header = "index, genre, filename, year, old_index, source1, source2, sentence1, sentence2, score",
    stsb.regression = true;
    v.push_back(stsb);
    TaskSpec mnli;
    mnli.name = "mnli", mnli.folder = "MNLI", mnli.a = "sentence1", mnli.b = "sentence2", mnli.label = "gold_label",
    mnli.official_header =
        "index, promptID, pairID, genre, sentence1_binary_parse, sentence2_binary_parse, sentence1_parse, "
        "sentence2_parse, sentence1, sentence2, label1, (label2..label5 in dev,) gold_label",
    mnli.label_names = {"contradiction", "entailment", "neutral"};
    v.push_back(mnli);
    TaskSpec qnli;
    qnli.name = "qnli", qnli.folder = "QNLI", qnli.a = "question", qnli.b = "sentence", qnli.label = "label",
    qnli.official_header = "index, question, sentence, label", qnli.label_names = entail;
    v.push_back(qnli);
    TaskSpec rte;
    rte.name = "rte", rte.folder = "RTE", rte.a = "sentence1", rte.b = "sentence2", rte.label = "label",
    rte.official_header = "index, sentence1, sentence2, label", rte.label_names = entail;
    v.push_back(rte);
    TaskSpec wnli;
    wnli.name = "wnli", wnli.folder = "WNLI", wnli.a = "sentence1", wnli.b = "sentence2", wnli.label = "label",
    wnli.official_header = "index, sentence1, sentence2, label", wnli.label_names = binary;
    v.push_back(wnli);
    return v;
  }();
  return s;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

const TaskSpec& spec_of(const std::string& task) {
  for (const auto& s : specs())
    if (s.name == task) return s;
  throw InputError("unknown GLUE task \"" + task + "\"; valid: " + join(glue_task_names(), ", "));
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

/// Raw examples of one file before labels become ids.
struct RawRows {
  std::vector<std::string> a, b, labels;
  std::vector<int64_t> lines;  // file line of each example, for messages
  int64_t skipped = 0;
};

RawRows read_rows(const std::string& path, const TaskSpec& spec) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  RawRows rows;
  std::string line;
  int64_t number = 0;
  size_t fields = spec.fields, ia = spec.a_index, ib = 0, il = spec.label_index;
  bool header_pending = spec.header;
  std::string columns_text = spec.header ? "" : " (" + spec.official_header + ")";
  while (std::getline(in, line)) {
    ++number;
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // MRPC's header has a BOM
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (header_pending) {
      header_pending = false;
      const auto names = split_tabs(line);
      fields = names.size();
      columns_text = " (" + join(names, ", ") + ")";
      auto find = [&](const std::string& col) {
        const auto n = std::count(names.begin(), names.end(), col);
        if (n != 1)
          throw InputError(path + ":1: " + (n ? "header repeats column \"" : "header has no column \"") + col +
                           "\"; expected the header of GLUE's " + spec.folder + " files: " + spec.official_header);
        return static_cast<size_t>(std::find(names.begin(), names.end(), col) - names.begin());
      };
      ia = find(spec.a);
      if (!spec.b.empty()) ib = find(spec.b);
      il = find(spec.label);
      continue;
    }
    if (line.empty()) continue;
    auto f = split_tabs(line);
    if (f.size() != fields) {
      if (spec.skip_malformed) {
        ++rows.skipped;
        continue;
      }
      throw InputError(path + ":" + std::to_string(number) + ": expected " + std::to_string(fields) +
                       " tab-separated fields" + columns_text + ", got " + std::to_string(f.size()));
    }
    rows.a.push_back(std::move(f[ia]));
    if (!spec.b.empty()) rows.b.push_back(std::move(f[ib]));
    rows.labels.push_back(std::move(f[il]));
    rows.lines.push_back(number);
  }
  if (header_pending) throw InputError(path + ": empty file; expected a header line (" + spec.official_header + ")");
  return rows;
}

/// Turns raw rows into a split: labels become ids into `label_names`, or scores for regression.
TextSplit to_split(RawRows rows, const std::string& path, const TaskSpec& spec,
                   const std::vector<std::string>& label_names) {
  TextSplit s;
  s.skipped = rows.skipped;
  const std::string column = spec.header ? "column \"" + spec.label + "\"" : "the label column";
  for (size_t i = 0; i < rows.labels.size(); ++i) {
    const std::string& raw = rows.labels[i];
    const std::string where = path + ":" + std::to_string(rows.lines[i]) + ": ";
    if (spec.regression) {
      errno = 0;
      char* end = nullptr;
      const double v = std::strtod(raw.c_str(), &end);
      if (raw.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 || v > 5)
        throw InputError(where + "score \"" + raw + "\" (" + column + ") is not a number in 0..5");
      s.scores.push_back(static_cast<float>(v));
    } else {
      const auto it = std::find(label_names.begin(), label_names.end(), raw);
      if (it == label_names.end())
        throw InputError(where + "label \"" + raw + "\" (" + column + ") is not one of " + join(label_names, ", "));
      s.labels.push_back(static_cast<int64_t>(it - label_names.begin()));
    }
  }
  s.a = std::move(rows.a);
  s.b = std::move(rows.b);
  return s;
}

void check_folder(const std::string& what, const std::string& folder, const std::vector<std::string>& files,
                  const std::string& layout) {
  if (!fs::is_directory(folder))
    throw InputError(what + ": no folder " + folder + "; expected a folder holding " + join(files, ", ") + " (" +
                     layout + ")");
  for (const auto& f : files)
    if (!fs::is_regular_file(fs::path(folder) / f))
      throw InputError(what + ": " + folder + " has no " + f + "; expected " + join(files, ", ") + " there (" + layout +
                       ")");
}

std::string path_in(const std::string& folder, const std::string& file) { return (fs::path(folder) / file).string(); }

}  // namespace

const std::vector<std::string>& glue_task_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& s : specs()) v.push_back(s.name);
    return v;
  }();
  return names;
}

std::string glue_folder_name(const std::string& task) { return spec_of(task).folder; }

std::vector<std::string> glue_file_names(const std::string& task) {
  if (spec_of(task).name == "mnli") return {"train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"};
  return {"train.tsv", "dev.tsv"};
}

void check_glue_folder(const std::string& task, const std::string& folder) {
  const auto& spec = spec_of(task);
  check_folder("GLUE task " + task, folder, glue_file_names(task),
               "the layout of GLUE's download_glue_data.py: <glue_dir>/" + spec.folder + "/");
}

TextTask read_glue(const std::string& task, const std::string& folder) {
  check_glue_folder(task, folder);
  const auto& spec = spec_of(task);
  TextTask t;
  t.name = spec.name;
  t.pair = !spec.b.empty();
  t.regression = spec.regression;
  t.label_names = spec.label_names;
  const auto files = glue_file_names(task);
  for (const auto& f : files) t.files.push_back(path_in(folder, f));
  auto read = [&](const std::string& path) { return to_split(read_rows(path, spec), path, spec, spec.label_names); };
  t.train = read(t.files[0]);
  t.dev = read(t.files[1]);
  if (files.size() == 3) t.dev_mismatched = read(t.files[2]);
  return t;
}

TextTask read_sentence_task(const std::string& folder, const std::string& name) {
  const std::vector<std::string> files{"train.tsv", "dev.tsv"};
  check_folder("task " + name, folder, files, "GLUE's single-sentence format: a header line sentence<TAB>label");
  TaskSpec spec;
  spec.name = name, spec.folder = name, spec.a = "sentence", spec.label = "label";
  spec.official_header = "sentence, label";
  TextTask t;
  t.name = name;
  for (const auto& f : files) t.files.push_back(path_in(folder, f));
  RawRows train = read_rows(t.files[0], spec), dev = read_rows(t.files[1], spec);

  std::vector<std::string> names = train.labels;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  auto integer = [](const std::string& s) {
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    std::strtoll(s.c_str(), &end, 10);
    return *end == '\0' && errno == 0;
  };
  if (!names.empty() && std::all_of(names.begin(), names.end(), integer))
    std::stable_sort(names.begin(), names.end(), [](const std::string& x, const std::string& y) {
      return std::strtoll(x.c_str(), nullptr, 10) < std::strtoll(y.c_str(), nullptr, 10);
    });
  if (names.size() < 2)
    throw InputError(t.files[0] + ": needs at least two different labels, found " + std::to_string(names.size()));
  t.label_names = names;
  t.train = to_split(std::move(train), t.files[0], spec, names);
  t.dev = to_split(std::move(dev), t.files[1], spec, names);
  return t;
}

}  // namespace htga::data
