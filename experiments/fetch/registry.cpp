// The one table of datasets `htga data fetch` downloads. Every checksum below is copied from a
// publication named beside it; none is computed here. Sources:
//   [tfds]  tensorflow/datasets, tensorflow_datasets/url_checksums/<name>.txt (SHA-256 and size)
//   [tv]    torchvision/datasets/mnist.py, MNIST.resources and FashionMNIST.resources (MD5)
//   [tt]    pytorch/text, torchtext/datasets/{squad2,wikitext2,wikitext103}.py (MD5)
//   [hf]    huggingface/datasets, datasets/glue/dataset_infos.json, download_checksums (SHA-256)
//   [deb]   Debian package dataset-fashion-mnist, /var/lib/dpkg/info/dataset-fashion-mnist.md5sums
//   [community] the MD5 that third-party Tiny ImageNet loaders check (e.g. the PyPI package
//           tinyimagenet); Stanford's CS231n page publishes none.

#include "experiments/fetch/registry.h"

#include "experiments/error.h"

namespace htga::fetch {

namespace {

Checksum sha256(const char* hex, const char* source) { return {HashKind::kSha256, hex, source}; }
Checksum md5(const char* hex, const char* source) { return {HashKind::kMd5, hex, source}; }

constexpr const char* kTfds = "tensorflow_datasets url_checksums";
constexpr const char* kTorchvision = "torchvision dataset class";
constexpr const char* kTorchtext = "torchtext dataset module";
constexpr const char* kHf = "Hugging Face datasets glue/dataset_infos.json";
constexpr const char* kDebian = "Debian package dataset-fashion-mnist (md5sums)";

DatasetEntry entry_of(std::string name, std::string folder, std::string what, std::string licence) {
  DatasetEntry d;
  d.name = std::move(name);
  d.folder = std::move(folder);
  d.what = std::move(what);
  d.licence = std::move(licence);
  return d;
}

RemoteFile archive(std::string url, Checksum sum, int64_t size, Unpack unpack, std::string into = "") {
  RemoteFile f;
  f.urls = {std::move(url)};
  f.checksums = {std::move(sum)};
  f.size = size;
  f.unpack = unpack;
  f.into = std::move(into);
  return f;
}

RemoteFile plain(std::vector<std::string> urls, std::vector<Checksum> sums, int64_t size, std::string into) {
  RemoteFile f;
  f.urls = std::move(urls);
  f.checksums = std::move(sums);
  f.size = size;
  f.into = std::move(into);
  return f;
}

DatasetEntry cifar10() {
  DatasetEntry d =
      entry_of("cifar10", "cifar-10-batches-bin", "CIFAR-10, binary version (60000 32x32 colour images, 10 classes)",
               "no licence stated, cite Krizhevsky 2009; https://www.cs.toronto.edu/~kriz/cifar.html");
  d.files = {archive("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                     sha256("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", kTfds), 170052171,
                     Unpack::kTarGz)};
  for (int i = 1; i <= 5; ++i) d.expected.push_back("cifar-10-batches-bin/data_batch_" + std::to_string(i) + ".bin");
  d.expected.push_back("cifar-10-batches-bin/test_batch.bin");
  d.loaders = {"cifar10"};
  d.grid_path = "data/cifar-10-batches-bin";
  return d;
}

DatasetEntry cifar100() {
  DatasetEntry d = entry_of("cifar100", "cifar-100-binary",
                            "CIFAR-100, binary version (60000 32x32 colour images, 100 classes in 20 superclasses)",
                            "no licence stated, cite Krizhevsky 2009; https://www.cs.toronto.edu/~kriz/cifar.html");
  d.files = {archive("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                     sha256("58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec", kTfds), 168513733,
                     Unpack::kTarGz)};
  d.expected = {"cifar-100-binary/train.bin", "cifar-100-binary/test.bin"};
  d.loaders = {"cifar100"};
  d.grid_path = "data/cifar-100-binary";
  return d;
}

constexpr const char* kMnistNames[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

DatasetEntry mnist() {
  DatasetEntry d = entry_of("mnist", "mnist", "MNIST, gzipped IDX files (70000 28x28 grey digits)",
                            "CC BY-SA 3.0 (LeCun, Cortes, Burges); http://yann.lecun.com/exdb/mnist/");
  const std::vector<Checksum> sums[4] = {
      {md5("f68b3c2dcbeaaa9fbdd348bbdeb94873", kTorchvision),
       sha256("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", kTfds)},
      {md5("d53e105ee54ea40749a09fcbcd1e9432", kTorchvision),
       sha256("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", kTfds)},
      {md5("9fb629c4189551a2d022fa330f9573f3", kTorchvision),
       sha256("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", kTfds)},
      {md5("ec29112dd5afa0611ce80d1b7f02629c", kTorchvision),
       sha256("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", kTfds)}};
  const int64_t sizes[4] = {9912422, 28881, 1648877, 4542};
  for (int i = 0; i < 4; ++i) {
    // torchvision's order: its own S3 copy first, LeCun's page (often unreachable) second.
    const std::string n = kMnistNames[i];
    d.files.push_back(
        plain({"https://ossci-datasets.s3.amazonaws.com/mnist/" + n, "http://yann.lecun.com/exdb/mnist/" + n}, sums[i],
              sizes[i], "mnist"));
    d.expected.push_back("mnist/" + n);
  }
  d.loaders = {"mnist"};
  d.grid_path = "data/mnist";
  return d;
}

DatasetEntry fashion_mnist() {
  DatasetEntry d =
      entry_of("fashion-mnist", "fashion-mnist", "Fashion-MNIST, gzipped IDX files (70000 28x28 grey images)",
               "MIT (Zalando Research); https://github.com/zalandoresearch/fashion-mnist");
  // Debian's package recompressed the files (each 24 bytes shorter, same IDX content): its
  // digests are listed beside the upstream ones, so that a copy from the package verifies.
  const std::vector<Checksum> sums[4] = {
      {md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d", kTorchvision),
       sha256("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", kTfds),
       md5("cf8536b0aa1a6ac5fa3f23001093305c", kDebian)},
      {md5("25c81989df183df01b3e8a0aad5dffbe", kTorchvision),
       sha256("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", kTfds),
       md5("10bea18fdb374794d4bb42e356e600c9", kDebian)},
      {md5("bef4ecab320f06d8554ea6380940ec79", kTorchvision),
       sha256("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", kTfds),
       md5("f78720b4224f21cce2f2ccf2d7a94c9a", kDebian)},
      {md5("bb300cfdad3c16e7a12a480ee83cd310", kTorchvision),
       sha256("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", kTfds),
       md5("0d30e22e447f3c33dab9ed536400ac01", kDebian)}};
  const int64_t sizes[4] = {26421880, 29515, 4422102, 5148};
  for (int i = 0; i < 4; ++i) {
    const std::string n = kMnistNames[i];
    RemoteFile f =
        plain({"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" + n}, sums[i], sizes[i], "fashion-mnist");
    f.local = {"/usr/share/datasets/fashion-mnist"};
    d.files.push_back(std::move(f));
    d.expected.push_back("fashion-mnist/" + n);
  }
  d.loaders = {"fashion-mnist"};
  d.grid_path = "data/fashion-mnist";
  return d;
}

/// GLUE as its download script (download_glue_data.py) lays it out: one folder per task.
DatasetEntry glue() {
  DatasetEntry d = entry_of("glue", "glue", "GLUE, the nine tasks' TSV files as download_glue_data.py leaves them",
                            "each task has its own terms (see https://gluebenchmark.com/faq); research use");
  const std::string base = "https://dl.fbaipublicfiles.com/glue/data/";
  struct Task {
    const char* zip;
    const char* sha;
    int64_t size;
  };
  const Task tasks[] = {{"CoLA.zip", "f212fcd832b8f7b435fb991f101abf89f96b933ab400603bf198960dfc32cbff", 376971},
                        {"SST-2.zip", "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa", 7439277},
                        {"QQP-clean.zip", "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0", 41696084},
                        {"STS-B.zip", "e60a6393de5a8b5b9bac5020a1554b54e3691f9d600b775bd131e613ac179c85", 802872},
                        {"MNLI.zip", "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633", 312783507},
                        {"QNLIv2.zip", "e634e78627a29adaecd4f955359b22bf5e70f2cbd93b493f2d624138a0c0e5f5", 10627589},
                        {"RTE.zip", "6bf86de103ecd335f3441bd43574d23fef87ecc695977a63b82d5efb206556ee", 697150},
                        {"WNLI.zip", "ae0e8e4d16f4d46d4a0a566ec7ecceccfd3fbfaa4a7a4b4e02848c0f2561ac46", 28999}};
  for (const Task& t : tasks)
    d.files.push_back(archive(base + t.zip, sha256(t.sha, kHf), t.size, Unpack::kZip, "glue"));
  // MRPC is not redistributed as a zip: the script splits Microsoft's files by GLUE's dev ids.
  const std::string senteval = "https://dl.fbaipublicfiles.com/senteval/senteval_data/";
  d.files.push_back(plain({senteval + "msr_paraphrase_train.txt"},
                          {sha256("60a9b09084528f0673eedee2b69cb941920f0b8cd0eeccefc464a98768457f89", kHf)}, 1047044,
                          "glue/MRPC"));
  d.files.push_back(plain({senteval + "msr_paraphrase_test.txt"},
                          {sha256("a04e271090879aaba6423d65b94950c089298587d9c084bf9cd7439bd785f784", kHf)}, 441275,
                          "glue/MRPC"));
  d.files.push_back(plain({base + "mrpc_dev_ids.tsv"},
                          {sha256("971d7767d81b997fd9060ade0ec23c4fc31cbb226a55d1bd4a1bac474eb81dc7", kHf)}, 6222,
                          "glue/MRPC"));
  d.post = PostStep::kMrpc;
  for (const char* task : {"CoLA", "SST-2", "MRPC", "QQP", "STS-B", "QNLI", "RTE", "WNLI"})
    for (const char* f : {"train.tsv", "dev.tsv"}) d.expected.push_back(std::string("glue/") + task + "/" + f);
  for (const char* f : {"train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"})
    d.expected.push_back(std::string("glue/MNLI/") + f);
  d.loaders = {"glue/cola", "glue/sst2", "glue/mrpc", "glue/qqp", "glue/stsb",
               "glue/mnli", "glue/qnli", "glue/rte",  "glue/wnli"};
  return d;
}

DatasetEntry squad() {
  DatasetEntry d = entry_of("squad", "squad", "SQuAD v1.1 and v2.0, train and dev JSON",
                            "CC BY-SA 4.0; https://rajpurkar.github.io/SQuAD-explorer/");
  const std::string base = "https://rajpurkar.github.io/SQuAD-explorer/dataset/";
  d.files = {
      plain({base + "train-v1.1.json"},
            {sha256("3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955", kTfds)}, 30288272, "squad"),
      plain({base + "dev-v1.1.json"},
            {sha256("95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9", kTfds)}, 4854279, "squad"),
      plain({base + "train-v2.0.json"}, {md5("62108c273c268d70893182d5cf8df740", kTorchtext)}, -1, "squad"),
      plain({base + "dev-v2.0.json"}, {md5("246adae8b7002f8679c027697b0b7cf8", kTorchtext)}, -1, "squad")};
  d.expected = {"squad/train-v1.1.json", "squad/dev-v1.1.json", "squad/train-v2.0.json", "squad/dev-v2.0.json"};
  d.loaders = {"squad"};
  return d;
}

/// WikiText's word-level release (wiki.*.tokens), the files the lm loader reads.
DatasetEntry wikitext(const std::string& which, const char* md5_hex, const char* what) {
  DatasetEntry d =
      entry_of("wikitext-" + which, "wikitext-" + which, what,
               "CC BY-SA 3.0 (Merity et al. 2016); "
               "https://blog.salesforceairesearch.com/the-wikitext-long-term-dependency-language-modeling-dataset/");
  const std::string zip = "wikitext-" + which + "-v1.zip";
  RemoteFile f = archive("https://s3.amazonaws.com/research.metamind.io/wikitext/" + zip, md5(md5_hex, kTorchtext), -1,
                         Unpack::kZip);
  f.urls.push_back("https://wikitext.smerity.com/" + zip);  // where Hugging Face's script now points
  d.files = {f};
  for (const char* s : {"train", "valid", "test"}) d.expected.push_back(d.folder + "/wiki." + s + ".tokens");
  d.loaders = {"lm"};
  d.grid_path = "data/" + d.folder;
  return d;
}

DatasetEntry imagenette(const std::string& px, const char* sha, int64_t size) {
  const std::string folder = "imagenette2-" + px;
  DatasetEntry d = entry_of(px == "160" ? "imagenette" : "imagenette-" + px, folder,
                            "Imagenette v2, " + px + " px (10 easy ImageNet classes, train/ and val/ class folders)",
                            "Apache 2.0 (fast.ai), images from ImageNet; https://github.com/fastai/imagenette");
  d.files = {archive("https://s3.amazonaws.com/fast-ai-imageclas/" + folder + ".tgz", sha256(sha, kTfds), size,
                     Unpack::kTarGz)};
  d.expected = {folder + "/train", folder + "/val"};
  d.loaders = {"image-folder"};
  d.grid_path = "data/" + folder;
  return d;
}

DatasetEntry tiny_imagenet() {
  DatasetEntry d =
      entry_of("tiny-imagenet", "tiny-imagenet-200",
               "Tiny ImageNet (200 classes of 64x64 images), rearranged into train/ and val/ class folders",
               "ImageNet terms (non-commercial research); http://cs231n.stanford.edu/");
  d.files = {archive(
      "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
      md5("90528d7ca1a48142e341f4ef8d21d0de", "third-party Tiny ImageNet loaders (Stanford publishes no checksum)"), -1,
      Unpack::kZip)};
  d.post = PostStep::kTinyImagenet;
  d.expected = {"tiny-imagenet-200/train", "tiny-imagenet-200/val"};
  d.loaders = {"image-folder"};
  d.grid_path = "data/tiny-imagenet-200";
  return d;
}

DatasetEntry imagenet() {
  DatasetEntry d = entry_of("imagenet", "imagenet", "ImageNet ILSVRC-2012 (1.28M images, 1000 classes)",
                            "ImageNet terms of access, account needed; https://image-net.org/download.php");
  d.not_fetchable =
      "ImageNet cannot be downloaded without an account. Sign in at https://image-net.org/download.php, "
      "accept the terms and download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (with the devkit's "
      "validation labels). Unpack them as data/imagenet/train/<wnid>/*.JPEG and data/imagenet/val/<wnid>/*.JPEG "
      "(the image-folder layout; a flat val/ with the devkit's or Kaggle's label file works too), pack it with "
      "`htga pack data/imagenet --out data/imagenet-pack` and train on {\"name\": \"packed\", \"path\": "
      "\"data/imagenet-pack\"} (experiments/grids/imagenet-resnet50.json): the packs are streamed from disk by "
      "worker threads. The image-folder reader would hold the decoded images in memory, which at ImageNet's size "
      "only a subset fits.";
  d.loaders = {"image-folder"};
  d.expected = {"imagenet/train", "imagenet/val"};
  return d;
}

}  // namespace

const std::vector<DatasetEntry>& datasets() {
  static const std::vector<DatasetEntry> table = {
      mnist(),
      fashion_mnist(),
      cifar10(),
      cifar100(),
      glue(),
      squad(),
      wikitext("2", "542ccefacc6c27f945fb54453812b3cd",
               "WikiText-2, word-level tokens (wiki.{train,valid,test}.tokens)"),
      wikitext("103", "9ddaacaf6af0710eda8c456decff7832",
               "WikiText-103, word-level tokens (wiki.{train,valid,test}.tokens)"),
      imagenette("160", "88daccb09b6fce93f45e6c09ddeb269cce705549e6bff322092a2a5a11489863", 98948031),
      imagenette("320", "5020a9130cea0348272823cb12d2db7e981c6f2afa3dce71ccd5b8013005c55e", 341553947),
      tiny_imagenet(),
      imagenet()};
  return table;
}

const DatasetEntry& find_dataset(const std::string& name) {
  std::string valid;
  for (const DatasetEntry& d : datasets()) {
    if (d.name == name) return d;
    valid += (valid.empty() ? "" : ", ") + d.name;
  }
  throw InputError("unknown dataset \"" + name + "\" for htga data; valid: " + valid);
}

const std::vector<NotFetched>& loaders_not_fetched() {
  static const std::vector<NotFetched> list = {
      {"text/sentences",
       "your own sentences in GLUE's single-sentence format (scripts/make-text-data writes an example): "
       "nothing to download"},
      {"packed",
       "packs that `htga pack ROOT --out DIR` makes from an image folder (a fetched imagenette, tiny-imagenet, or "
       "ImageNet unpacked by hand): nothing to download"}};
  return list;
}

const char* name_of(HashKind kind) { return kind == HashKind::kMd5 ? "md5" : "sha256"; }

std::string url_file_name(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  while (!path.empty() && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace htga::fetch
