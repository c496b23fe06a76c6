#!/usr/bin/env python3
"""The Python way: the experiment htga runs, written as a researcher would in plain PyTorch.

Fashion-MNIST from the IDX files, an MLP, SGD with torch.nn.utils.clip_grad_norm_, a Hill
estimate of the gradient noise (g_t minus an EMA of gradients) every step, one SQLite row per
step, test accuracy at the end. Prints one JSON line of timings and results.
"""
import argparse
import gzip
import json
import math
import os
import sqlite3
import struct
import time

t_process = time.perf_counter()
import torch  # noqa: E402  (import time counts: it is part of the Python way)


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


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train-size", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--hidden", default=None, help="hidden widths (mlp: 256,128; cnn: 128)")
    p.add_argument("--channels", default="32,64", help="cnn: conv channels per stage (5x5, same padding)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--alpha-every", type=int, default=1, help="0 = no tail estimate")
    p.add_argument("--noise-ema", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--db", default="/tmp/reference.db")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))

    t0 = time.perf_counter()
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
    y_train, y_test = y_train.to(device), y_test.to(device)
    load_s = time.perf_counter() - t0

    torch.manual_seed(args.seed)
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
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    params = list(model.parameters())

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
        "process_s": round(time.perf_counter() - t_process, 3),
    }))


if __name__ == "__main__":
    main()
