// Text data: GLUE files in each task's official layout, the single-sentence format, BERT's basic
// tokenizer and WordPiece, word vocabularies, pair packing, SQuAD JSON and spans, LM corpora.

#include <catch2/catch.hpp>
#include <map>

#include "experiments/data/glue.h"
#include "experiments/data/lm.h"
#include "experiments/data/squad.h"
#include "experiments/data/tokenizer.h"
#include "experiments/error.h"
#include "test_util.h"

using htga::InputError;
using htga::test::TempDir;
using htga::test::write_text;
using namespace htga::data;

namespace {

/// Writes `files` (name -> contents) into `dir`/`folder` and returns the folder's path.
std::string write_task(const TempDir& dir, const std::string& folder, const std::map<std::string, std::string>& files) {
  std::filesystem::create_directories(dir.file(folder));
  for (const auto& [name, text] : files) write_text(dir.file(folder + "/" + name), text);
  return dir.file(folder);
}

const std::string kMnliTrainHeader =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
const std::string kMnliDevHeader =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";

/// BERT's tokenization_test.py vocabulary, with [PAD] first.
Vocab bert_test_vocab() {
  return Vocab::from_tokens(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","});
}

}  // namespace

TEST_CASE("CoLA: header-less source, label, mark, sentence; quotes are text", "[text]") {
  TempDir dir("cola");
  auto folder = write_task(dir, "CoLA",
                           {{"train.tsv",
                             "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n"
                             "gj04\t0\t*\tThey drank the pub.\n"
                             "clc95\t1\t\tThe \"sailor\" said hi.\n"},
                            {"dev.tsv", "gj04\t0\t*\tThe more we study verbs, the crazier they get get.\r\n"}});
  auto t = read_glue("cola", folder);
  CHECK(t.name == "cola");
  CHECK_FALSE(t.pair);
  CHECK(t.label_names == std::vector<std::string>{"0", "1"});
  REQUIRE(t.train.size() == 3);
  CHECK(t.train.a[1] == "They drank the pub.");
  CHECK(t.train.a[2] == "The \"sailor\" said hi.");
  CHECK(t.train.labels == std::vector<int64_t>{1, 0, 1});
  CHECK(t.train.b.empty());
  REQUIRE(t.dev.size() == 1);
  CHECK(t.dev.a[0] == "The more we study verbs, the crazier they get get.");  // \r dropped
  CHECK(t.dev.labels == std::vector<int64_t>{0});

  write_text(dir.file("CoLA/dev.tsv"), "gj04\t0\t*\tfine\ngj04\t0\tno sentence\n");
  CHECK_THROWS_WITH(read_glue("cola", folder),
                    dir.file("CoLA/dev.tsv") +
                        ":2: expected 4 tab-separated fields (source, label, original mark, sentence (no header "
                        "line)), got 3");
  write_text(dir.file("CoLA/dev.tsv"), "gj04\t2\t*\tbad label\n");
  CHECK_THROWS_WITH(read_glue("cola", folder),
                    dir.file("CoLA/dev.tsv") + ":1: label \"2\" (the label column) is not one of 0, 1");
}

TEST_CASE("SST-2: sentence and label by header name", "[text]") {
  TempDir dir("sst2");
  auto folder = write_task(dir, "SST-2",
                           {{"train.tsv",
                             "sentence\tlabel\nhide new secretions from the parental units \t0\n"
                             "that loves its characters \t1\n"},
                            {"dev.tsv", "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n"}});
  auto t = read_glue("sst2", folder);
  CHECK(t.train.a ==
        std::vector<std::string>{"hide new secretions from the parental units ", "that loves its characters "});
  CHECK(t.train.labels == std::vector<int64_t>{0, 1});
  CHECK(t.dev.labels == std::vector<int64_t>{1});

  // Columns are found by name, so their order does not matter; a missing one is named.
  write_text(dir.file("SST-2/dev.tsv"), "label\tsentence\n0\tswapped columns\n");
  auto swapped = read_glue("sst2", folder);
  CHECK(swapped.dev.a == std::vector<std::string>{"swapped columns"});
  CHECK(swapped.dev.labels == std::vector<int64_t>{0});
  write_text(dir.file("SST-2/dev.tsv"), "text\tlabel\nx\t0\n");
  CHECK_THROWS_WITH(read_glue("sst2", folder),
                    dir.file("SST-2/dev.tsv") +
                        ":1: header has no column \"sentence\"; expected the header of GLUE's SST-2 files: "
                        "sentence, label");
}

TEST_CASE("MRPC: Quality and #1/#2 String columns, header with a byte-order mark", "[text]") {
  TempDir dir("mrpc");
  const std::string header = "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
  auto folder = write_task(
      dir, "MRPC",
      {{"train.tsv", header +
                         "1\t702876\t702977\tAmrozi accused his brother , whom he called \" the witness \" , of "
                         "deliberately distorting his evidence .\tReferring to him as only \" the witness \" , Amrozi "
                         "accused his brother of deliberately distorting his evidence .\n"
                         "0\t2108705\t2108831\tYucaipa owned Dominick 's before selling the chain to Safeway in 1998 "
                         "for $ 2.5 billion .\tYucaipa bought Dominick 's in 1995 for $ 693 million and sold it to "
                         "Safeway for $ 1.8 billion in 1998 .\n"},
       {"dev.tsv", header + "1\t1\t2\tHe said .\tHe said so .\n"}});
  auto t = read_glue("mrpc", folder);
  CHECK(t.pair);
  REQUIRE(t.train.size() == 2);
  CHECK(t.train.a[0].rfind("Amrozi accused his brother , whom he called \" the witness \"", 0) == 0);
  CHECK(t.train.b[1] ==
        "Yucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion in 1998 .");
  CHECK(t.train.labels == std::vector<int64_t>{1, 0});
  CHECK(t.dev.a == std::vector<std::string>{"He said ."});
  CHECK(t.dev.b == std::vector<std::string>{"He said so ."});
}

TEST_CASE("QQP: lines with missing fields are skipped and counted", "[text]") {
  TempDir dir("qqp");
  const std::string header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n";
  auto folder =
      write_task(dir, "QQP",
                 {{"train.tsv",
                   header + "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration is "
                            "enough for the exam jlpt5?\t0\n"
                            "360472\t364011\t490273\tWhat causes stool color to change to yellow?\n"
                            "is it normal?\t0\n"
                            "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your "
                            "horniness?\t1\n"},
                  {"dev.tsv", header + "1\t2\t3\tWhy?\tWhy not?\t0\n"}});
  auto t = read_glue("qqp", folder);
  REQUIRE(t.train.size() == 2);
  CHECK(t.train.skipped == 2);
  CHECK(t.train.a[1] == "How do I control my horny emotions?");
  CHECK(t.train.b[1] == "How do you control your horniness?");
  CHECK(t.train.labels == std::vector<int64_t>{0, 1});
  CHECK(t.dev.skipped == 0);
}

TEST_CASE("STS-B: float scores in 0..5 by column name", "[text]") {
  TempDir dir("stsb");
  const std::string header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  auto folder =
      write_task(dir, "STS-B",
                 {{"train.tsv", header + "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is "
                                         "taking off.\tAn air plane is taking off.\t5.000\n"
                                         "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man is playing "
                                         "a large flute.\tA man is playing a flute.\t3.800\n"},
                  {"dev.tsv", header + "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a "
                                       "hard hat is dancing.\tA man wearing a hard hat is dancing.\t0\n"}});
  auto t = read_glue("stsb", folder);
  CHECK(t.regression);
  CHECK(t.label_names.empty());
  CHECK(t.train.labels.empty());
  REQUIRE(t.train.scores.size() == 2);
  CHECK(t.train.scores[0] == 5.0f);
  CHECK(t.train.scores[1] == Approx(3.8f));
  CHECK(t.train.b[0] == "An air plane is taking off.");
  CHECK(t.dev.scores == std::vector<float>{0.0f});

  write_text(dir.file("STS-B/dev.tsv"), header + "0\tg\tf\ty\to\tn\tn\ta\tb\t5.5\n");
  CHECK_THROWS_WITH(read_glue("stsb", folder),
                    dir.file("STS-B/dev.tsv") + ":2: score \"5.5\" (column \"score\") is not a number in 0..5");
}

TEST_CASE("MNLI: genre columns, gold_label, matched and mismatched dev sets", "[text]") {
  TempDir dir("mnli");
  auto folder = write_task(
      dir, "MNLI",
      {{"train.tsv", kMnliTrainHeader +
                         "0\t31193\t31193n\tgovernment\t( ( Conceptually ( cream skimming ) ) ... )\t( ( ( Product "
                         "and ) geography ) ... )\t(ROOT (S ...))\t(ROOT (S ...))\tConceptually cream skimming has two "
                         "basic dimensions - product and geography.\tProduct and geography are what make cream "
                         "skimming work. \tneutral\tneutral\n"
                         "1\t101457\t101457e\ttelephone\t(bp)\t(bp)\t(p)\t(p)\tyou know during the season and i guess "
                         "at at your level uh you lose them to the next level\tYou lose the things to the following "
                         "level if the people recall.\tentailment\tentailment\n"},
       {"dev_matched.tsv",
        kMnliDevHeader + "0\t63735\t63735n\tslate\t(bp)\t(bp)\t(p)\t(p)\tThe new rights are nice enough\tEveryone "
                         "really likes the newest benefits \tneutral\tentailment\tneutral\tneutral\tneutral\t"
                         "neutral\n"},
       {"dev_mismatched.tsv", kMnliDevHeader +
                                  "0\t75290\t75290c\tletters\t(bp)\t(bp)\t(p)\t(p)\tYour contribution helped make it "
                                  "possible for us to provide our students with a quality education.\tYour "
                                  "contributions were of no help with our students' education.\tcontradiction\t"
                                  "contradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\n"}});
  auto t = read_glue("mnli", folder);
  CHECK(t.label_names == std::vector<std::string>{"contradiction", "entailment", "neutral"});
  REQUIRE(t.train.size() == 2);
  CHECK(t.train.a[0] == "Conceptually cream skimming has two basic dimensions - product and geography.");
  CHECK(t.train.b[0] == "Product and geography are what make cream skimming work. ");
  CHECK(t.train.labels == std::vector<int64_t>{2, 1});
  CHECK(t.dev.a == std::vector<std::string>{"The new rights are nice enough"});
  CHECK(t.dev.labels == std::vector<int64_t>{2});
  CHECK(t.dev_mismatched.labels == std::vector<int64_t>{0});
  CHECK(t.dev_mismatched.b ==
        std::vector<std::string>{"Your contributions were of no help with our students' education."});
  CHECK(t.files.size() == 3);

  std::filesystem::remove(dir.file("MNLI/dev_mismatched.tsv"));
  CHECK_THROWS_WITH(read_glue("mnli", folder),
                    "GLUE task mnli: " + folder +
                        " has no dev_mismatched.tsv; expected train.tsv, dev_matched.tsv, dev_mismatched.tsv there "
                        "(the layout of GLUE's download_glue_data.py: <glue_dir>/MNLI/)");
}

TEST_CASE("QNLI, RTE and WNLI: index, two texts, label", "[text]") {
  TempDir dir("nli");
  auto qnli = write_task(dir, "QNLI",
                         {{"train.tsv",
                           "index\tquestion\tsentence\tlabel\n0\tWhen did the third Digimon series begin?\tUnlike the "
                           "two seasons before it, Digimon Tamers takes a darker approach.\tnot_entailment\n"
                           "1\tWhat is the name?\tThe name is Bob.\tentailment\n"},
                          {"dev.tsv", "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tentailment\n"}});
  auto t = read_glue("qnli", qnli);
  CHECK(t.label_names == std::vector<std::string>{"entailment", "not_entailment"});
  CHECK(t.train.labels == std::vector<int64_t>{1, 0});
  CHECK(t.train.a[0] == "When did the third Digimon series begin?");
  CHECK(t.train.b[1] == "The name is Bob.");

  auto rte = write_task(dir, "RTE",
                        {{"train.tsv",
                          "index\tsentence1\tsentence2\tlabel\n0\tNo Weapons of Mass Destruction Found in Iraq "
                          "Yet.\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment\n"},
                         {"dev.tsv",
                          "index\tsentence1\tsentence2\tlabel\n0\tDana Reeve, the widow of the actor Christopher "
                          "Reeve, has died.\tChristopher Reeve had an accident.\tnot_entailment\n"
                          "1\tYet, we now are discovering.\tWe are discovering.\tentailment\n"}});
  auto r = read_glue("rte", rte);
  CHECK(r.train.b == std::vector<std::string>{"Weapons of Mass Destruction Found in Iraq."});
  CHECK(r.dev.labels == std::vector<int64_t>{1, 0});
  write_text(dir.file("RTE/dev.tsv"), "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tcontradiction\n");
  CHECK_THROWS_WITH(read_glue("rte", rte), dir.file("RTE/dev.tsv") +
                                               ":2: label \"contradiction\" (column \"label\") is not one of "
                                               "entailment, not_entailment");

  auto wnli = write_task(dir, "WNLI",
                         {{"train.tsv",
                           "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin through a carrot. When I pulled the "
                           "pin out, it had a hole.\tThe carrot had a hole.\t1\n"},
                          {"dev.tsv",
                           "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged with hair. It has "
                           "to be cleaned.\tThe hair has to be cleaned.\t0\n"}});
  auto w = read_glue("wnli", wnli);
  CHECK(w.train.labels == std::vector<int64_t>{1});
  CHECK(w.dev.labels == std::vector<int64_t>{0});
  CHECK(w.dev.b == std::vector<std::string>{"The hair has to be cleaned."});
}

TEST_CASE("GLUE: folder names, a missing folder says where and what, unknown tasks list the valid ones", "[text]") {
  CHECK(glue_task_names().size() == 9);
  CHECK(glue_folder_name("sst2") == "SST-2");
  CHECK(glue_folder_name("stsb") == "STS-B");
  CHECK(glue_folder_name("cola") == "CoLA");
  CHECK_THROWS_WITH(glue_folder_name("squad"),
                    "unknown GLUE task \"squad\"; valid: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli");
  TempDir dir("gluemissing");
  const std::string where = dir.file("glue/RTE");
  CHECK_THROWS_WITH(read_glue("rte", where), "GLUE task rte: no folder " + where +
                                                 "; expected a folder holding train.tsv, dev.tsv (the layout of GLUE's "
                                                 "download_glue_data.py: <glue_dir>/RTE/)");
  CHECK_THROWS_AS(check_glue_folder("rte", where), InputError);
}

TEST_CASE("single-sentence format with any labels: names sorted, numerically when integers", "[text]") {
  TempDir dir("topics");
  auto folder = write_task(dir, "topics",
                           {{"train.tsv",
                             "sentence\tlabel\nA fortune about love.\tlove\nComputers crash.\tcomputers\n"
                             "Love again.\tlove\nA \"quoted\" joke.\thumorists\n"},
                            {"dev.tsv", "sentence\tlabel\nBits and bytes.\tcomputers\n"}});
  auto t = read_sentence_task(folder, "fortunes");
  CHECK(t.label_names == std::vector<std::string>{"computers", "humorists", "love"});
  CHECK(t.train.labels == std::vector<int64_t>{2, 0, 2, 1});
  CHECK(t.train.a[3] == "A \"quoted\" joke.");
  CHECK(t.dev.labels == std::vector<int64_t>{0});

  write_text(dir.file("topics/dev.tsv"), "sentence\tlabel\nx\tpolitics\n");
  CHECK_THROWS_WITH(read_sentence_task(folder, "fortunes"),
                    dir.file("topics/dev.tsv") +
                        ":2: label \"politics\" (column \"label\") is not one of computers, humorists, love");

  write_text(dir.file("topics/train.tsv"), "sentence\tlabel\na\t10\nb\t2\nc\t1\n");
  write_text(dir.file("topics/dev.tsv"), "sentence\tlabel\nd\t2\n");
  auto n = read_sentence_task(folder, "numbers");
  CHECK(n.label_names == std::vector<std::string>{"1", "2", "10"});
  CHECK(n.train.labels == std::vector<int64_t>{2, 1, 0});
}

TEST_CASE("basic tokenizer: BERT's cleaning, lower-casing, accents and punctuation", "[text]") {
  // google-research/bert tokenization_test.py
  CHECK(basic_tokenize(" \tHeLLo!how  \n Are yoU?  ") ==
        std::vector<std::string>{"hello", "!", "how", "are", "you", "?"});
  CHECK(basic_tokenize("H\u00E9llo") == std::vector<std::string>{"hello"});
  BasicTokenizerOptions cased;
  cased.lower_case = false;
  cased.strip_accents = false;
  CHECK(basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", cased) ==
        std::vector<std::string>{"HeLLo", "!", "how", "Are", "yoU", "?"});
  // Non-ASCII: accents stripped, an em dash is punctuation, a control character vanishes, a
  // no-break space separates, combining accents are dropped.
  CHECK(basic_tokenize("Na\u00EFve\u2014CAF\u00C9\u00A0\u0141\u00F3d\u017A x\x01y e\u0301") ==
        std::vector<std::string>{"naive", "\u2014", "cafe", "\u0142odz", "xy", "e"});

  auto t = basic_tokenize_with_offsets("Caf\u00E9, ok");
  REQUIRE(t.size() == 3);
  CHECK(t[0].text == "cafe");
  CHECK(t[0].begin == 0);
  CHECK(t[0].end == 5);  // "é" is two bytes
  CHECK(t[1].text == ",");
  CHECK(t[1].begin == 5);
  CHECK(t[2].begin == 7);
  CHECK(t[2].end == 9);
}

TEST_CASE("WordPiece: greedy longest-match-first with ## continuations", "[text]") {
  const Vocab v = bert_test_vocab();
  CHECK(v.pad_id() == 0);
  CHECK(v.unk_id() == 1);
  CHECK(v.cls_id() == 2);
  CHECK(v.sep_id() == 3);
  CHECK(v.mask_id() == -1);
  CHECK(wordpiece("unwanted", v) == std::vector<std::string>{"un", "##want", "##ed"});
  CHECK(wordpiece("running", v) == std::vector<std::string>{"runn", "##ing"});
  CHECK(wordpiece("unwantedx", v) == std::vector<std::string>{"[UNK]"});      // "x" matches nothing
  CHECK(wordpiece("wanted", v) == std::vector<std::string>{"want", "##ed"});  // "want" beats "wa"
  CHECK(wordpiece("unwanted", v, /*max_chars_per_word=*/7) == std::vector<std::string>{"[UNK]"});

  auto tok = Tokenizer::wordpiece(v);
  CHECK(tok.tokenize("UNwant\u00E9d,running") ==
        std::vector<std::string>{"un", "##want", "##ed", ",", "runn", "##ing"});  // BERT's full-tokenizer test
  CHECK(tok.tokenize("unwantedX running") == std::vector<std::string>{"[UNK]", "runn", "##ing"});
  CHECK(tok.ids("unwanted running") == std::vector<int64_t>{8, 5, 6, 9, 10});
  auto off = tok.tokenize_with_offsets("Unwanted, running");
  REQUIRE(off.size() == 6);
  CHECK((off[1].text == "##want" && off[1].begin == 0 && off[1].end == 8));  // a piece carries its word's span
  CHECK((off[3].text == "," && off[3].begin == 8 && off[3].end == 9));
  CHECK((off[5].text == "##ing" && off[5].begin == 10 && off[5].end == 17));
}

TEST_CASE("vocab.txt: ids by line, special tokens checked", "[text]") {
  TempDir dir("vocab");
  write_text(dir.file("vocab.txt"), "[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\r\n##s\n");
  auto v = Vocab::from_file(dir.file("vocab.txt"));
  CHECK(v.size() == 8);
  CHECK(v.unk_id() == 2);
  CHECK(v.mask_id() == 5);
  CHECK(v.id("the") == 6);  // \r stripped
  CHECK(v.id("cat") == 2);
  write_text(dir.file("vocab.txt"), "[UNK]\n[PAD]\n[CLS]\n[SEP]\n");
  CHECK_THROWS_WITH(Vocab::from_file(dir.file("vocab.txt")),
                    dir.file("vocab.txt") + ": the first token (id 0) must be [PAD]");
  write_text(dir.file("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n");
  CHECK_THROWS_WITH(Vocab::from_file(dir.file("vocab.txt")), dir.file("vocab.txt") + ": no [SEP] token");
  CHECK_THROWS_AS(Vocab::from_file(dir.file("nope.txt")), InputError);
}

TEST_CASE("word-level vocabulary: count descending, ties by string, min_count and max_vocab", "[text]") {
  const std::vector<std::string> texts{"the cat sat", "The dog sat.", "a cat"};
  auto v = build_word_vocab(texts);
  CHECK(v.tokens() ==
        std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "cat", "sat", "the", ".", "a", "dog"});
  WordVocabOptions o;
  o.min_count = 2;
  CHECK(build_word_vocab(texts, o).size() == 4 + 3);
  o.min_count = 1;
  o.max_vocab = 2;
  o.mask_token = true;
  CHECK(build_word_vocab(texts, o).tokens() ==
        std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "sat"});
  auto tok = Tokenizer::word_level(texts);
  CHECK(tok.ids("The bird sat") == std::vector<int64_t>{6, 1, 5});
  CHECK(tok.tokenize("The bird") == std::vector<std::string>{"the", "bird"});
}

TEST_CASE("encoding: [CLS] a [SEP] b [SEP], segments, BERT's longest-first truncation, padding", "[text]") {
  auto tok = Tokenizer::wordpiece(bert_test_vocab());
  auto single = tok.encode("unwanted running", 8);
  CHECK(single.ids == std::vector<int64_t>{2, 8, 5, 6, 9, 10, 3, 0});
  CHECK(single.segments == std::vector<int64_t>(8, 0));
  CHECK(single.length == 7);
  CHECK(single.b_offset == -1);
  CHECK(tok.encode("unwanted running", 4).ids == std::vector<int64_t>{2, 8, 5, 3});

  // a = un ##want ##ed (3), b = runn ##ing , (3), 4 places: b loses one on the tie, then a.
  auto pair = tok.encode("unwanted", "running ,", 7);
  CHECK(pair.ids == std::vector<int64_t>{2, 8, 5, 3, 9, 10, 3});
  CHECK(pair.segments == std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1});
  CHECK(pair.b_offset == 4);
  auto padded = tok.encode("want", "want", 8);
  CHECK(padded.ids == std::vector<int64_t>{2, 4, 3, 4, 3, 0, 0, 0});
  CHECK(padded.segments == std::vector<int64_t>{0, 0, 0, 1, 1, 0, 0, 0});
  CHECK(padded.length == 5);
  auto second = tok.encode("unwanted", "running ,", 7, Truncation::kOnlySecond);
  CHECK(second.ids == std::vector<int64_t>{2, 8, 5, 6, 3, 9, 3});
  CHECK_THROWS_AS(tok.encode("a", "b", 2), InputError);

  auto packed = pack_encodings({single, tok.encode("want", 8)});
  REQUIRE(packed.sizes() == torch::IntArrayRef({2, 2, 8}));
  CHECK(packed[0][0][1].item<int64_t>() == 8);
  CHECK(packed[1][0][1].item<int64_t>() == 4);
  CHECK(packed[1][0][3].item<int64_t>() == 0);
  CHECK(packed.dtype() == torch::kLong);
}

TEST_CASE("SQuAD v2.0 JSON: answers in code points, mismatches counted, impossible questions", "[text]") {
  TempDir dir("squad");
  // "é" is one code point but two bytes: answer_start 37 is byte 38.
  write_text(dir.file("dev-v2.0.json"), R"({"version": "v2.0", "data": [{"title": "Beyonce", "paragraphs": [{
    "context": "Beyonc\u00e9 Giselle Knowles-Carter (born September 4, 1981) is an American singer.",
    "qas": [
      {"id": "q1", "question": "When was Beyonce born?", "is_impossible": false,
       "answers": [{"text": "September 4, 1981", "answer_start": 37}, {"text": "1981", "answer_start": 50},
                   {"text": "September", "answer_start": 36}]},
      {"id": "q2", "question": "When did Beyonce die?", "is_impossible": true, "answers": [],
       "plausible_answers": [{"text": "1981", "answer_start": 50}]}]}]}]})");
  auto d = read_squad(dir.file("dev-v2.0.json"));
  CHECK(d.version == "v2.0");
  REQUIRE(d.contexts.size() == 1);
  REQUIRE(d.questions.size() == 2);
  CHECK(d.answers == 3);
  CHECK(d.mismatched_answers == 1);
  CHECK(d.impossible == 1);
  const auto& q1 = d.questions[0];
  CHECK(q1.answers[0].char_start == 37);
  CHECK(q1.answers[0].byte_start == 38);
  CHECK(q1.answers[1].byte_start == 51);
  CHECK(q1.answers[2].byte_start == -1);
  CHECK(d.questions[1].is_impossible);
  CHECK(d.questions[1].answers.empty());
  CHECK(byte_offset(d.contexts[0], 37) == std::optional<size_t>(38));

  write_text(dir.file("bad.json"), R"({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q",
    "answers": [{"text": "c", "answer_start": "0"}]}]}]}]})");
  CHECK_THROWS_WITH(read_squad(dir.file("bad.json")),
                    dir.file("bad.json") + ": /data/0/paragraphs/0/qas/0/answers/0/answer_start: expected an integer");
  write_text(dir.file("bad.json"), R"({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q",
    "answers": []}]}]}]})");
  CHECK_THROWS_WITH(
      read_squad(dir.file("bad.json")),
      dir.file("bad.json") + ": /data/0/paragraphs/0/qas/0: question \"x\" has no answers and is not is_impossible");
}

TEST_CASE("SQuAD spans: characters to tokens and back to the original text", "[text]") {
  const std::string context = "Beyonc\u00e9 Giselle Knowles-Carter (born September 4, 1981) is an American singer.";
  const size_t begin = 38, end = begin + std::string("September 4, 1981").size();
  auto tokens = basic_tokenize_with_offsets(context);
  auto span = token_span(tokens, begin, end);
  REQUIRE(span);
  CHECK(tokens[span->first].text == "september");
  CHECK(tokens[span->second].text == "1981");
  CHECK(span->second - span->first == 3);  // september 4 , 1981
  CHECK(span_text(context, tokens, span->first, span->second) == "September 4, 1981");
  CHECK(span_text(context, tokens, 0, 0) == "Beyonc\u00e9");
  CHECK(span_text(context, tokens, 3, 2) == "");
  CHECK_FALSE(token_span(tokens, 8, 9));  // the space after "Beyoncé"

  auto tok = Tokenizer::word_level({context, "when was she born ?"});
  auto f = encode_squad(tok, "When was she born?", context, std::make_pair(begin, end), 32);
  // [CLS] when was she born ? [SEP] beyonce giselle knowles - carter ( born september ...
  CHECK(f.encoding.b_offset == 7);
  CHECK(f.start == 7 + 7);
  CHECK(f.end == 7 + 10);
  CHECK(f.encoding.ids[static_cast<size_t>(f.start)] == tok.vocab().id("september"));
  CHECK(feature_answer_text(f, context, f.start, f.end) == "September 4, 1981");
  CHECK(feature_answer_text(f, context, 0, 0) == "");  // no answer
  CHECK(feature_answer_text(f, context, 2, 3) == "");  // question positions
  auto cut = encode_squad(tok, "When was she born?", context, std::make_pair(begin, end), 16);
  CHECK(cut.answer_cut);
  CHECK((cut.start == 0 && cut.end == 0));
  auto none = encode_squad(tok, "When did she die?", context, std::nullopt, 32);
  CHECK((none.start == 0 && none.end == 0 && !none.answer_cut));
}

TEST_CASE("WikiText folder at word level: <eos> per line, vocabulary from train, <unk> for the rest", "[text]") {
  TempDir dir("wikitext");
  write_text(dir.file("wiki.train.tokens"), " = Valkyria = \n\n Senjō no Valkyria <unk> \n");
  write_text(dir.file("wiki.valid.tokens"), " Valkyria no Chronicles \n");
  write_text(dir.file("wiki.test.tokens"), " = \n");
  LmOptions o;
  o.level = LmLevel::kWord;
  auto c = read_lm_corpus(dir.str(), o);
  // train tokens: = Valkyria = <eos> <eos> Senjō no Valkyria <unk> <eos>
  CHECK(c.vocab == std::vector<std::string>{"<unk>", "<eos>", "=", "Valkyria", "Senjō", "no"});
  CHECK(c.train == std::vector<int64_t>{2, 3, 2, 1, 1, 4, 5, 3, 0, 1});
  CHECK(c.valid == std::vector<int64_t>{3, 5, 0, 1});
  CHECK(c.valid_unknown == 1);
  CHECK(c.train_unknown == 1);
  CHECK(c.test == std::vector<int64_t>{2, 1});
  CHECK(c.eos_id == 1);

  std::filesystem::remove(dir.file("wiki.test.tokens"));
  CHECK_THROWS_WITH(read_lm_corpus(dir.str(), o),
                    dir.str() +
                        ": no wiki.test.tokens; a language-modelling folder holds wiki.train.tokens, "
                        "wiki.valid.tokens and wiki.test.tokens (the WikiText layout), or give one plain-text file");
}

TEST_CASE("plain-text corpus at character level: contiguous line fractions, windows", "[text]") {
  TempDir dir("lmchar");
  std::string text;
  for (int i = 0; i < 10; ++i) text += std::string(i < 8 ? "ab" : i == 8 ? "c\u00e9" : "zz") + "\n";
  write_text(dir.file("corpus.txt"), text);
  LmOptions o;
  o.level = LmLevel::kChar;
  o.valid_fraction = 0.1;
  o.test_fraction = 0.1;
  auto c = read_lm_corpus(dir.file("corpus.txt"), o);
  // train: 8 lines "ab\n"; each char 8 times: ties by byte string: "\n" < "a" < "b".
  CHECK(c.vocab == std::vector<std::string>{"<unk>", "\n", "a", "b"});
  CHECK(c.eos_id == -1);
  CHECK(c.train.size() == 24);
  CHECK(c.valid == std::vector<int64_t>{0, 0, 1});  // "c", "é" unseen
  CHECK(c.test == std::vector<int64_t>{0, 0, 1});
  CHECK(c.valid_unknown == 2);

  o.valid_fraction = 0.01;
  CHECK_THROWS_AS(read_lm_corpus(dir.file("corpus.txt"), o), InputError);
  CHECK(parse_lm_level("char") == LmLevel::kChar);
  CHECK_THROWS_WITH(parse_lm_level("byte", "lm.level"), "lm.level: expected \"char\" or \"word\", got \"byte\"");

  std::vector<int64_t> stream{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto w = make_windows(stream, 3);
  REQUIRE(w.sizes() == torch::IntArrayRef({3, 4}));
  CHECK(w[1][0].item<int64_t>() == 3);
  CHECK(w[2][3].item<int64_t>() == 9);
  auto s = make_windows(stream, 3, /*stride=*/1);
  CHECK(s.size(0) == 7);
  CHECK(s[6][0].item<int64_t>() == 6);
  CHECK(make_windows(stream, 10).size(0) == 0);
}
