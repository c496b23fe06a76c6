#!/usr/bin/env python3
"""The Python way: the experiment htga runs, written as a researcher would in plain PyTorch.

Fashion-MNIST from the IDX files and an MLP or CNN (--model mlp|cnn), CIFAR-10 from the binary
batch files and ResNet-20 with on-device crop-flip augmentation (--model resnet20), or a GLUE-style
single-sentence TSV folder and a pre-norm transformer encoder (--model transformer); SGD with
torch.nn.utils.clip_grad_norm_, a Hill estimate of the gradient noise (g_t minus an EMA of
gradients) every step, one SQLite row per step, test accuracy at the end. Prints one JSON line of
timings and results. The models, data preparation and augmentation mirror htga's
(experiments/models, experiments/data), so that the work per step is the same.
"""
import argparse
import gzip
import json
import math
import os
import re
import sqlite3
import struct
import time
import unicodedata

t_process = time.perf_counter()
import torch  # noqa: E402  (import time counts: it is part of the Python way)
import torch.nn.functional as F  # noqa: E402


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, kind, ndims = struct.unpack(">HBB", data[:4])
    assert zero == 0 and kind == 0x08, f"{path}: not an unsigned-byte IDX file"
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims :]), dtype=torch.uint8).reshape(dims)


def find(folder, name):
    for candidate in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(os.path.join(folder, name))


def stratified(labels, size, classes, seed):
    g = torch.Generator().manual_seed(seed)
    per = [size // classes + (1 if c < size % classes else 0) for c in range(classes)]
    idx = [torch.nonzero(labels == c).flatten() for c in range(classes)]
    picked = [i[torch.randperm(len(i), generator=g)[:n]] for i, n in zip(idx, per)]
    return torch.cat(picked).sort().values


def hill(x):
    a = x.abs().flatten()
    k = int(math.isqrt(a.numel()))
    top = torch.topk(a, k + 1).values
    return k / torch.log(top[:k] / top[k]).sum()


# ---------------------------------------------------------------- CIFAR-10 (htga: data/cifar.cpp)

def read_cifar10(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data or len(data) % 3073:
        raise ValueError(f"{path}: not a whole number of 3073-byte CIFAR-10 records")
    rec = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, 3073)
    labels = rec[:, 0].long()
    if labels.numel() and labels.max().item() >= 10:
        raise ValueError(f"{path}: label outside 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32).contiguous(), labels


def load_cifar10(folder):
    sub = os.path.join(folder, "cifar-10-batches-bin")
    folder = sub if os.path.isdir(sub) else folder
    train = [read_cifar10(os.path.join(folder, f"data_batch_{i}.bin")) for i in range(1, 6)]
    x_test, y_test = read_cifar10(os.path.join(folder, "test_batch.bin"))
    return torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), x_test, y_test


def crop_flip(x, pad, dy, dx, flip):
    """htga's data::crop_flip: out[b, c, i, j] = padded[b, c, dy[b] + i, dx'[b, j]], dx' mirrored
    where flip[b]; whole batch on its device (two gathers)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    rows = dy.view(b, 1) + torch.arange(h, device=x.device)
    ar = torch.arange(w, device=x.device)
    cols = torch.where(flip.view(b, 1), dx.view(b, 1) + (w - 1) - ar, dx.view(b, 1) + ar)
    picked = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * pad))
    return picked.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def random_crop_flip(x, pad, gen):
    """htga's data::random_crop_flip: one [3, B] draw on the host, one copy to the device."""
    r = torch.empty(3, x.shape[0], dtype=torch.int64)
    r[:2].random_(0, 2 * pad + 1, generator=gen)
    r[2:].random_(0, 2, generator=gen)
    r = r.to(x.device, non_blocking=True)
    return crop_flip(x, pad, r[0], r[1], r[2].bool())


# ---------------------------------------------------------------- ResNet-20 (htga: models/resnet.cpp)

def conv3x3(cin, cout, stride):
    return torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(torch.nn.Module):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + shortcut (option A: subsample, zero-pad
    the new channels), -> ReLU."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), torch.nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, 1), torch.nn.BatchNorm2d(planes)
        self.stride, self.pad = stride, (planes - cin) // 2

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad > 0:
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return torch.relu(out + shortcut)


class CifarResNet(torch.nn.Module):
    """ResNet-(6n+2): conv3x3(16) -> BN -> ReLU, 3 stages of n blocks (16, 32, 64 channels), global
    average pooling, Linear; kaiming_normal_(fan_out, relu) convs, BN (1, 0)."""

    def __init__(self, depth, in_channels, classes):
        super().__init__()
        n = (depth - 2) // 6
        layers = [conv3x3(in_channels, 16, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU()]
        cin = 16
        for stage in range(3):
            planes = 16 << stage
            for b in range(n):
                layers.append(BasicBlock(cin, planes, 2 if b == 0 and stage > 0 else 1))
                cin = planes
        layers.append(torch.nn.AdaptiveAvgPool2d(1))
        self.body = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


# ---------------------------------------------------------------- text (htga: data/glue.cpp, tokenizer.cpp)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # ASCII Cc but \t \n \r: dropped, as BERT
_ASCII_PUNCT = re.compile(r"[!-/:-@\[-`{-~]")
_ASCII_SPLIT = re.compile(r"[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~]+")


def _is_punct(ch):
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \
        unicodedata.category(ch).startswith("P")


def basic_tokenize(text):
    """BERT's BasicTokenizer (uncased): drop controls, split on whitespace, lower-case, strip
    accents, every punctuation character a token of its own."""
    out = []
    for word in _CONTROL.sub("", text).lower().split():
        if word.isascii():
            out += _ASCII_SPLIT.findall(word) if _ASCII_PUNCT.search(word) else [word]
            continue
        word = "".join(ch for ch in unicodedata.normalize("NFD", word)
                       if unicodedata.category(ch) not in ("Mn", "Cc", "Cf") and ch != "\ufffd")
        piece = ""
        for ch in word:
            if _is_punct(ch):
                if piece:
                    out.append(piece)
                out.append(ch)
                piece = ""
            else:
                piece += ch
        if piece:
            out.append(piece)
    return out


def read_sentences(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().lstrip("\ufeff").split("\n")
    header = lines[0].rstrip("\r").split("\t")
    ia, il = header.index("sentence"), header.index("label")
    texts, labels = [], []
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            continue
        f = line.split("\t")
        if len(f) != len(header):
            raise ValueError(f"{path}: expected {len(header)} tab-separated fields, got {len(f)}")
        texts.append(f[ia])
        labels.append(f[il])
    return texts, labels


def load_sentences(folder, max_len, train_size, max_vocab=30000):
    """htga's text/sentences: word vocabulary of the training rows ([PAD]=0, [UNK]=1, [CLS]=2,
    [SEP]=3, then words by count, ties by string), [CLS] words [SEP] cut to max_len and padded with
    [PAD], packed as [N, 2, L] (ids, segments) with L the longest example of all splits."""
    tr_text, tr_lab = read_sentences(os.path.join(folder, "train.tsv"))
    te_text, te_lab = read_sentences(os.path.join(folder, "dev.tsv"))
    names = sorted(set(tr_lab))
    if all(re.fullmatch(r"[+-]?\d+", s) for s in names):
        names.sort(key=int)
    index = {s: i for i, s in enumerate(names)}
    y_train = torch.tensor([index[s] for s in tr_lab], dtype=torch.int64)
    y_test = torch.tensor([index[s] for s in te_lab], dtype=torch.int64)
    if train_size:
        rows = stratified(y_train, train_size, len(names), 0)
        tr_text, y_train = [tr_text[i] for i in rows.tolist()], y_train[rows]
    tr_tok = [basic_tokenize(t) for t in tr_text]
    te_tok = [basic_tokenize(t) for t in te_text]
    counts = {}
    for words in tr_tok:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    for s in specials:
        counts.pop(s, None)
    words = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if max_vocab:
        words = words[:max_vocab]
    vocab = {w: i for i, w in enumerate(specials + [w for w, _ in words])}

    def pack(tokenized):
        ids = torch.zeros(len(tokenized), max_len, dtype=torch.int64)
        longest = 2
        for r, words in enumerate(tokenized):
            row = [2] + [vocab.get(w, 1) for w in words[: max_len - 2]] + [3]
            ids[r, : len(row)] = torch.tensor(row)
            longest = max(longest, len(row))
        return ids, longest

    x_train, l_train = pack(tr_tok)
    x_test, l_test = pack(te_tok)
    length = min(max(l_train, l_test), max_len)  # htga cuts the padding no example uses

    def packed(ids):
        ids = ids[:, :length]
        return torch.stack([ids, torch.zeros_like(ids)], 1).contiguous()  # segments: all 0

    return packed(x_train), y_train, packed(x_test), y_test, len(names), len(vocab)


# ---------------------------------------------------------------- transformer (htga: models/transformer.cpp)

MASKED_LOGIT = -1e4


class SelfAttention(torch.nn.Module):
    def __init__(self, d_model, heads, dropout):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(d_model, 3 * d_model)
        self.out = torch.nn.Linear(d_model, d_model)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x, blocked):
        b, l, d = x.shape
        dk = d // self.heads
        q, k, v = self.qkv(x).view(b, l, 3, self.heads, dk).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(dk)
        scores = scores.masked_fill(blocked, MASKED_LOGIT)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return self.out(torch.matmul(weights, v).transpose(1, 2).reshape(b, l, d))


class TransformerBlock(torch.nn.Module):
    """Pre-norm: x + Dropout(Attention(LN(x))), then x + Dropout(W2 GELU(W1 LN(x)))."""

    def __init__(self, d_model, heads, ff, dropout):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, heads, dropout)
        self.ln2 = torch.nn.LayerNorm(d_model)
        self.ff1 = torch.nn.Linear(d_model, ff)
        self.ff2 = torch.nn.Linear(ff, d_model)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x, blocked):
        h = x + self.dropout(self.attention(self.ln1(x), blocked))
        return h + self.dropout(self.ff2(F.gelu(self.ff1(self.ln2(h)))))


class TransformerClassifier(torch.nn.Module):
    """sqrt(d) E[id] + P[position] + S[segment] -> Dropout -> blocks -> LayerNorm; [CLS] position
    -> Dropout -> Linear. [PAD] (id 0) keys masked. Linear N(0, 0.02) with zero biases, P, S
    N(0, 1), E N(0, 1/d)."""

    def __init__(self, vocab, max_len, layers, d_model, heads, ff, dropout, classes, segments=2):
        super().__init__()
        self.d_model = d_model
        self.tokens = torch.nn.Embedding(vocab, d_model)
        self.positions = torch.nn.Embedding(max_len, d_model)
        self.segments = torch.nn.Embedding(segments, d_model)
        self.dropout = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList(TransformerBlock(d_model, heads, ff, dropout) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(d_model)
        self.head_dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(d_model, classes)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0, 0.02)
                    m.bias.zero_()
                elif isinstance(m, torch.nn.Embedding):
                    m.weight.normal_(0, 1)
            self.tokens.weight.normal_(0, 1 / math.sqrt(d_model))

    def forward(self, x):
        ids, seg = x[:, 0], x[:, 1]
        b, l = ids.shape
        pos = torch.arange(l, device=ids.device)
        h = self.tokens(ids) * math.sqrt(self.d_model) + self.positions(pos).unsqueeze(0) + self.segments(seg)
        h = self.dropout(h)
        blocked = ids.eq(0).view(b, 1, 1, l)
        for block in self.blocks:
            h = block(h, blocked)
        h = self.ln_f(h)[:, 0]
        return self.head(self.head_dropout(h))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=None, help="mlp/cnn: Fashion-MNIST IDX folder (default "
                   "/usr/share/datasets/fashion-mnist); resnet20: CIFAR-10 binary folder; transformer: folder "
                   "with train.tsv and dev.tsv (header sentence<TAB>label)")
    p.add_argument("--train-size", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "resnet20", "transformer"])
    p.add_argument("--hidden", default=None, help="hidden widths (mlp: 256,128; cnn: 128)")
    p.add_argument("--channels", default="32,64", help="cnn: conv channels per stage (5x5, same padding)")
    p.add_argument("--augment", default="crop-flip", choices=["none", "crop-flip"], help="resnet20 (CIFAR-10)")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--d-model", type=int, default=256, help="transformer width")
    p.add_argument("--heads", type=int, default=4, help="transformer attention heads")
    p.add_argument("--ff", type=int, default=1024, help="transformer feed-forward width")
    p.add_argument("--max-len", type=int, default=64, help="transformer: tokens per example")
    p.add_argument("--dropout", type=float, default=0.1, help="transformer dropout")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--alpha-every", type=int, default=1, help="0 = no tail estimate")
    p.add_argument("--noise-ema", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--db", default="/tmp/reference.db")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.data is None:
        if args.model not in ("mlp", "cnn"):
            p.error(f"--model {args.model} needs --data")
        args.data = "/usr/share/datasets/fashion-mnist"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))

    t0 = time.perf_counter()
    augment = None
    if args.model in ("mlp", "cnn"):
        x_train = read_idx(find(args.data, "train-images-idx3-ubyte")).float().div_(255)
        y_train = read_idx(find(args.data, "train-labels-idx1-ubyte")).long()
        x_test = read_idx(find(args.data, "t10k-images-idx3-ubyte")).float().div_(255)
        y_test = read_idx(find(args.data, "t10k-labels-idx1-ubyte")).long()
        if args.train_size:
            rows = stratified(y_train, args.train_size, 10, 0)
            x_train, y_train = x_train[rows], y_train[rows]
        mean, std = x_train.mean(), x_train.std()
        x_train = ((x_train - mean) / std).unsqueeze(1).to(device)
        x_test = ((x_test - mean) / std).unsqueeze(1).to(device)
    elif args.model == "resnet20":
        x_train, y_train, x_test, y_test = load_cifar10(args.data)
        if args.train_size:
            rows = stratified(y_train, args.train_size, 10, 0)
            x_train, y_train = x_train[rows], y_train[rows]
        # Per-channel mean and (unbiased) std of the training pixels in [0, 1], as htga: exact,
        # from a histogram of the 8-bit values.
        v = torch.arange(256, dtype=torch.float64) / 255
        mean, std = [], []
        for c in range(x_train.shape[1]):
            h = torch.bincount(x_train[:, c].flatten(), minlength=256).double()
            n = h.sum().item()
            m = (h * v).sum().item() / n
            var = ((h * v * v).sum().item() - n * m * m) / (n - 1) if n > 1 else 0.0
            mean.append(m)
            std.append(max(math.sqrt(max(var, 0.0)), 1e-12))
        mean = torch.tensor(mean).view(1, -1, 1, 1)
        std = torch.tensor(std).view(1, -1, 1, 1)
        x_train = x_train.float().div_(255).sub_(mean).div_(std).to(device)
        x_test = x_test.float().div_(255).sub_(mean).div_(std).to(device)
        if args.augment == "crop-flip":
            augment_gen = torch.Generator().manual_seed(args.seed ^ 0x5bd1e995)
            augment = lambda x: random_crop_flip(x, 4, augment_gen)  # noqa: E731
    else:
        x_train, y_train, x_test, y_test, classes, vocab_size = load_sentences(args.data, args.max_len,
                                                                               args.train_size)
        x_train, x_test = x_train.to(device), x_test.to(device)
    y_train, y_test = y_train.to(device), y_test.to(device)
    load_s = time.perf_counter() - t0

    torch.manual_seed(args.seed)
    if args.model in ("mlp", "cnn"):
        hidden = args.hidden if args.hidden is not None else ("256,128" if args.model == "mlp" else "128")
        layers, width = [], 28 * 28
        if args.model == "cnn":  # as htga's cnn: per stage conv -> ReLU -> 2x2 max pool
            c, side = 1, 28
            for out in [int(v) for v in args.channels.split(",") if v]:
                layers += [torch.nn.Conv2d(c, out, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
                c, side = out, side // 2
            width = c * side * side
        layers.append(torch.nn.Flatten())
        for h in [int(v) for v in hidden.split(",") if v]:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)).to(device)
    elif args.model == "resnet20":
        model = CifarResNet(20, 3, 10).to(device)
    else:
        model = TransformerClassifier(vocab_size, args.max_len, args.layers, args.d_model, args.heads, args.ff,
                                      args.dropout, classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    params = list(model.parameters())
    n_params = sum(q.numel() for q in params if q.requires_grad)

    if os.path.exists(args.db):
        os.remove(args.db)
    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE steps (step INTEGER PRIMARY KEY, epoch INTEGER, loss REAL, train_acc REAL,"
               " lr REAL, alpha_hat REAL, grad_norm REAL)")

    n = x_train.shape[0]
    gen = torch.Generator().manual_seed(args.seed)
    ema = None
    step = 0
    t_alpha = t_log = 0.0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        rows = []
        for start in range(0, n, args.batch_size):
            idx = perm[start : start + args.batch_size]
            x, y = x_train[idx], y_train[idx]
            if augment is not None:
                x = augment(x)
            opt.zero_grad()
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            loss.backward()
            alpha = float("nan")
            if args.alpha_every:
                ta = time.perf_counter()
                g = torch.cat([q.grad.flatten() for q in params])
                if ema is not None and step % args.alpha_every == 0:
                    alpha = hill(g - ema).item()
                ema = g.clone() if ema is None else ema.mul_(args.noise_ema).add_(g, alpha=1 - args.noise_ema)
                t_alpha += time.perf_counter() - ta
            norm = torch.nn.utils.clip_grad_norm_(params, args.clip_norm)
            opt.step()
            tl = time.perf_counter()
            acc = (logits.argmax(1) == y).float().mean()
            rows.append((step, epoch, loss.item(), acc.item(), args.lr, alpha, norm.item()))
            t_log += time.perf_counter() - tl
            step += 1
        tl = time.perf_counter()
        with db:
            db.executemany("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        t_log += time.perf_counter() - tl
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t_train

    model.eval()
    with torch.no_grad():
        correct = sum((model(x_test[i : i + 4096]).argmax(1) == y_test[i : i + 4096]).sum().item()
                      for i in range(0, x_test.shape[0], 4096))
    print(json.dumps({
        "impl": "python", "torch": torch.__version__, "device": str(device), "steps": step,
        "load_s": round(load_s, 4), "train_s": round(train_s, 4), "steps_per_s": round(step / train_s, 1),
        "alpha_s": round(t_alpha, 4), "log_s": round(t_log, 4), "test_acc": correct / x_test.shape[0],
        "process_s": round(time.perf_counter() - t_process, 3), "params": n_params,
    }))


if __name__ == "__main__":
    main()
