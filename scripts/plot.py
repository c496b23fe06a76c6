#!/usr/bin/env python3
"""Figures from an htga result database (Python 3, matplotlib, pandas; Debian's
python3-matplotlib and python3-pandas).

    scripts/plot.py [--db results/htga.db] [--out results/plots] [--summary report.json] [--all]

Writes PNG and SVG files into --out:
  alpha_hat          alpha_hat over training steps per optimizer: median across seeds, band = range
  curves             training loss over steps and the test metric over epochs, same bands
  comparison         mean test metric of each optimizer with its 95% confidence interval
  alpha_vs_lr_batch  each run's median alpha_hat over its last 10% of steps against lr / batch size
                     (Gurbuzbalaban, Simsekli and Zhu 2021: heavier tails at larger eta/b)

One panel per dataset/model group. As in `htga report`, each optimizer family is shown by its
configuration with the best mean validation metric (test when no run has a validation split;
configurations with a diverged run rank last); --all shows every configuration, and --summary
takes the selection from `htga report --format json`.
"""

import argparse
import json
import math
import os
import sqlite3
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

LOWER_IS_BETTER = {"loss", "ppl", "perplexity"}
PERCENT = {"acc", "top5", "accuracy"}
MAX_BINS = 200  # points per curve: steps are averaged in bins so that any run plots quickly
MAX_GROUPS = 6

# Student t 0.975 quantiles for df 1..30; beyond, the Cornish-Fisher expansion (error < 1e-4).
T975 = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423]


def t975(df):
    if df <= 30:
        return T975[int(df) - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def canonical(obj):
    return json.dumps(obj, sort_keys=True)


def configuration(cfg):
    c = json.loads(json.dumps(cfg))
    c.pop("seed", None)
    train = c.get("train", {})
    train.pop("device", None)
    train.pop("checkpoint_every", None)
    train.pop("test_every", None)
    train.pop("val_every", None)
    return c


def load_runs(con):
    runs = pd.read_sql_query(
        "SELECT id, grid, status, dataset, model, optimizer, seed, config, metric, val_metric, test_metric "
        "FROM runs ORDER BY id", con)
    if runs.empty:
        return runs
    cfgs = [json.loads(c) for c in runs["config"]]
    runs["metric"] = runs["metric"].fillna("acc")
    runs["group"] = [canonical([c.get("dataset"), c.get("model")]) for c in cfgs]
    runs["group_label"] = runs["dataset"] + "/" + runs["model"]
    runs["cfg"] = [canonical(configuration(c)) for c in cfgs]
    runs["lr"] = [c.get("optimizer", {}).get("lr", float("nan")) for c in cfgs]
    runs["batch_size"] = [c.get("train", {}).get("batch_size", float("nan")) for c in cfgs]
    return runs


def select_configs(runs, show_all, summary):
    """The configurations to draw: {cfg key: label}."""
    if summary is not None:
        keep = {}
        for row in summary:
            if row.get("selected") or show_all:
                keep[canonical(row["config"])] = row["optimizer"] + ("" if not show_all else " " + row["label"])
        return keep
    keep = {}
    for (_, family), part in runs.groupby(["group", "optimizer"]):
        stats = []
        any_val = part["val_metric"].notna().any()
        for cfg, rows in part.groupby("cfg"):
            fin = rows[rows["status"] == "finished"]
            score = (fin["val_metric"] if any_val else fin["test_metric"]).mean()
            lower = rows["metric"].iloc[0] in LOWER_IS_BETTER
            diverged = (rows["status"] == "diverged").sum()
            stats.append((math.isnan(score), diverged > 0, score if lower else -score, cfg))
        stats.sort()
        chosen = stats if show_all else stats[:1]
        for missing, _, _, cfg in chosen:
            if not missing or show_all:
                keep[cfg] = family
    if show_all:  # tell a family's configurations apart by what differs
        for cfg in list(keep):
            c = json.loads(cfg)
            fam = [json.loads(k) for k in keep if json.loads(k)["optimizer"]["name"] == c["optimizer"]["name"]]
            diff = [k for k, v in c["optimizer"].items() if any(o["optimizer"].get(k) != v for o in fam)]
            keep[cfg] += "".join(f" {k}={c['optimizer'][k]}" for k in sorted(diff))
    return keep


def binned_steps(con, run_id, column):
    last = con.execute("SELECT max(step) FROM steps WHERE run_id = ?", (run_id,)).fetchone()[0]
    if last is None:
        return pd.Series(dtype=float)
    width = max(1, math.ceil((last + 1) / MAX_BINS))
    # Averaged in SQL: memory stays small whatever the run's length. Column names are fixed here.
    rows = con.execute(
        f"SELECT CAST(step / ? AS INTEGER) AS b, avg({column}) FROM steps "
        f"WHERE run_id = ? AND {column} IS NOT NULL GROUP BY b ORDER BY b", (width, run_id)).fetchall()
    return pd.Series([v for _, v in rows], index=[(b + 0.5) * width for b, _ in rows], dtype=float)


def band(ax, series_list, label, color, marker=None):
    """Median across seeds with the range as a band."""
    series_list = [s for s in series_list if len(s)]
    if not series_list:
        return
    frame = pd.concat(series_list, axis=1).sort_index()
    med = frame.median(axis=1)
    ax.plot(med.index, med.values, label=f"{label} (n={frame.shape[1]})", color=color, lw=1.5, marker=marker,
            ms=4)
    if frame.shape[1] > 1:
        ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color=color, alpha=0.2, lw=0)


def test_curve(con, run_id, metric):
    if metric in ("acc", "loss", "top5"):
        rows = con.execute(f"SELECT epoch, {metric} FROM evals WHERE run_id = ? AND split = 'test' ORDER BY epoch",
                           (run_id,)).fetchall()
    else:
        rows = con.execute(
            "SELECT epoch, value FROM metrics WHERE run_id = ? AND split = 'test' AND name = ? ORDER BY epoch",
            (run_id, metric)).fetchall()
    rows = [(e + 1, v) for e, v in rows if v is not None]
    return pd.Series([v for _, v in rows], index=[e for e, _ in rows], dtype=float)


def tail_window(con, run_id, fraction=0.1):
    lo, hi = con.execute("SELECT min(step), max(step) FROM steps WHERE run_id = ?", (run_id,)).fetchone()
    if hi is None:
        return None
    window = max(1, math.ceil(fraction * (hi - lo + 1)))
    return con.execute(
        "SELECT alpha_hat, lr FROM steps WHERE run_id = ? AND step > ? AND alpha_hat IS NOT NULL",
        (run_id, hi - window)).fetchall()


def panels(n):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    return rows, cols


def save(fig, out, name):
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, f"{name}.{ext}"), dpi=100)
    plt.close(fig)
    print(f"wrote {os.path.join(out, name)}.png/.svg", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="results/htga.db")
    ap.add_argument("--out", default="results/plots")
    ap.add_argument("--summary", help="htga report --format json output: its selection and intervals")
    ap.add_argument("--all", action="store_true", help="every configuration, not each family's selected one")
    args = ap.parse_args()
    if not os.path.isfile(args.db):
        sys.exit(f"plot.py: {args.db}: no such database")
    os.makedirs(args.out, exist_ok=True)
    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    runs = load_runs(con)
    if runs.empty:
        sys.exit(f"plot.py: {args.db}: no runs")
    summary = None
    if args.summary:
        with open(args.summary) as f:
            summary = json.load(f)
    keep = select_configs(runs, args.all, summary)
    shown = runs[runs["cfg"].isin(keep) & (runs["status"] == "finished")].copy()
    shown["label"] = shown["cfg"].map(keep)
    groups = list(dict.fromkeys(shown["group"]))[:MAX_GROUPS]
    colors = {name: f"C{i}" for i, name in enumerate(sorted(set(shown["label"])))}
    rows, cols = panels(max(1, len(groups)))

    # alpha_hat over steps.
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        part = shown[shown["group"] == g]
        for label, rs in part.groupby("label"):
            band(ax, [binned_steps(con, r, "alpha_hat") for r in rs["id"]], label, colors[label])
        ax.axhline(2.0, color="grey", lw=0.8, ls=":")  # below 2: heavy-tailed
        ax.set_title(part["group_label"].iloc[0], fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("alpha_hat")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    save(fig, args.out, "alpha_hat")

    # Training loss and the test metric.
    fig, axes = plt.subplots(2, len(groups) or 1, figsize=(4.2 * max(1, len(groups)), 6), squeeze=False)
    for j, g in enumerate(groups):
        part = shown[shown["group"] == g]
        metric = part["metric"].iloc[0]
        for label, rs in part.groupby("label"):
            band(axes[0, j], [binned_steps(con, r, "loss") for r in rs["id"]], label, colors[label])
            scale = 100 if metric in PERCENT else 1
            band(axes[1, j], [test_curve(con, r, metric) * scale for r in rs["id"]], label, colors[label],
                 marker="o")
        axes[0, j].set_title(part["group_label"].iloc[0], fontsize=10)
        axes[0, j].set_xlabel("step")
        axes[0, j].set_ylabel("training loss")
        axes[1, j].set_xlabel("epoch")
        axes[1, j].set_ylabel(f"test {metric}" + (" (%)" if metric in PERCENT else ""))
        axes[0, j].legend(fontsize=7)
    save(fig, args.out, "curves")

    # Test metric with 95% confidence intervals.
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.5 + 0.45 * max(3, len(colors)) * rows),
                             squeeze=False)
    for ax, g in zip(axes.flat, groups):
        part = shown[shown["group"] == g]
        metric = part["metric"].iloc[0]
        scale = 100 if metric in PERCENT else 1
        labels, means, lows, highs = [], [], [], []
        for label, rs in part.groupby("label"):
            v = rs["test_metric"].dropna() * scale
            if v.empty:
                continue
            m = v.mean()
            h = t975(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
            labels.append(f"{label} (n={len(v)})")
            means.append(m)
            lows.append(h)
            highs.append(h)
        y = range(len(labels))
        ax.errorbar(means, y, xerr=[lows, highs], fmt="o", capsize=4, color="C0")
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_title(part["group_label"].iloc[0], fontsize=10)
        ax.set_xlabel(f"test {metric}" + (" (%)" if metric in PERCENT else "") + ", mean and 95% CI")
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    save(fig, args.out, "comparison")

    # alpha_hat against lr / batch size, every finished run.
    fig, ax = plt.subplots(figsize=(5, 3.6))
    fin = runs[runs["status"] == "finished"]
    for i, (family, rs) in enumerate(fin.groupby("optimizer")):
        xs, ys = [], []
        for _, r in rs.iterrows():
            tail = tail_window(con, r["id"])
            if not tail:
                continue
            alphas = sorted(a for a, _ in tail)
            lrs = [lr for _, lr in tail if lr is not None]
            lr = sum(lrs) / len(lrs) if lrs else r["lr"]  # the rate actually used (htga adapts it)
            if not r["batch_size"] or not lr or lr <= 0:
                continue
            xs.append(lr / r["batch_size"])
            ys.append(alphas[len(alphas) // 2] if len(alphas) % 2 else
                      (alphas[len(alphas) // 2 - 1] + alphas[len(alphas) // 2]) / 2)
        ax.scatter(xs, ys, label=family, s=18, color=f"C{i}", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate / batch size (last 10% of steps)")
    ax.set_ylabel("median alpha_hat, last 10%")
    ax.legend(fontsize=8)
    save(fig, args.out, "alpha_vs_lr_batch")


if __name__ == "__main__":
    main()
