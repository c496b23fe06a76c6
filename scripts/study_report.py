#!/usr/bin/env python3
"""Writes results/STUDY.md, results/study/*.csv and results/study/figures/ from the study's
database (scripts/study runs the grids of experiments/grids/study/ into it first).

    scripts/study_report.py [--db results/study/study.db] [--out results] [--htga build/htga]

Q1: each run's alpha_hat is the median of its estimates over the second half of its steps; the
    slope of alpha_hat against log10(lr / b) is an ordinary least-squares fit with a Student-t
    95% interval, per model, noise source, estimator and scope, and per layer.
Q2: `htga report --adjust holm` over the low-data grids (selection on validation, test reported).
Q3: the ablation grid with --select all; each variant is compared with the full HTGA, paired by
    seed.
The conclusions in plain words are results/study/conclusions.md, written by hand from these
tables and included verbatim.
"""

import argparse
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot  # noqa: E402  (matplotlib set to Agg there)
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

OUTSIDE_KEY = ("device", "checkpoint_every", "test_every", "val_every", "alpha_graph")


# ---------------------------------------------------------------------------------------------
# small statistics


def ols(x, y):
    """Slope of y on x with its 95% interval (Student t, n - 2 degrees of freedom)."""
    n = len(x)
    if n < 3:
        return dict(n=n, slope=math.nan, lo=math.nan, hi=math.nan, intercept=math.nan)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    slope = sxy / sxx
    icpt = my - slope * mx
    sse = sum((b - icpt - slope * a) ** 2 for a, b in zip(x, y))
    se = math.sqrt(sse / (n - 2) / sxx)
    t = plot.t975(n - 2)
    return dict(n=n, slope=slope, lo=slope - t * se, hi=slope + t * se, intercept=icpt)


def spearman(x, y):
    if len(x) < 3:
        return math.nan
    s = pd.Series(x).rank().corr(pd.Series(y).rank())
    return float(s) if s == s else math.nan


def paired(a, b):
    """Mean of a - b over common keys with its 95% interval; a, b: {seed: value}."""
    common = sorted(set(a) & set(b))
    d = [a[k] - b[k] for k in common if math.isfinite(a[k]) and math.isfinite(b[k])]
    n = len(d)
    if n < 2:
        return n, math.nan, math.nan, math.nan
    m = sum(d) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in d) / (n - 1))
    h = plot.t975(n - 1) * sd / math.sqrt(n)
    return n, m, m - h, m + h


def fmt(v, digits=3):
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def pval(v):
    if v is None or not math.isfinite(v):
        return "-"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def pp(v, sign=False):
    """A fraction in percent points."""
    if v is None or not math.isfinite(v):
        return "-"
    return f"{100 * v:+.2f}" if sign else f"{100 * v:.2f}"


def save_figure(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "figures", name), dpi=110)
    plt.close(fig)


def fit_groups(df, keys):
    """Per group of `keys`: the OLS fit of alpha on log10(lr/b) over the runs with a finite alpha."""
    out = []
    for values, part in df.groupby(keys):
        ok = part[part["alpha"].map(math.isfinite)]
        f = ols(list(ok["log10_lr_b"]), list(ok["alpha"]))
        out.append(dict(zip(keys, values), cells=len(part), used=f["n"], slope=f["slope"], slope_lo=f["lo"],
                        slope_hi=f["hi"], spearman=spearman(list(ok["log10_lr_b"]), list(ok["alpha"])),
                        alpha_min=ok["alpha"].min(), alpha_max=ok["alpha"].max(), median_alpha=ok["alpha"].median()))
    return pd.DataFrame(out)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# the database


def load_runs(con, prefix):
    runs = pd.read_sql_query(
        "SELECT id, grid, status, dataset, model, optimizer, seed, config, test_metric, val_metric, "
        "train_time_s, gen_gap, cell_key FROM runs WHERE grid LIKE ? ORDER BY id", con, params=(prefix + "%",))
    runs["cfg"] = [json.loads(c) for c in runs["config"]]
    return runs


def run_alpha(con, run_id):
    """Median alpha_hat over the second half of the run's steps (estimates only)."""
    last = con.execute("SELECT max(step) FROM steps WHERE run_id = ?", (run_id,)).fetchone()[0]
    if last is None:
        return math.nan
    vals = [r[0] for r in con.execute(
        "SELECT alpha_hat FROM steps WHERE run_id = ? AND step >= ? AND alpha_hat IS NOT NULL",
        (run_id, last // 2))]
    vals = [v for v in vals if math.isfinite(v)]
    return float(pd.Series(vals).median()) if vals else math.nan


def layer_alphas(con, run_id):
    """{layer name: median alpha_hat over the second half of the run's steps}."""
    last = con.execute("SELECT max(step) FROM alpha_layers WHERE run_id = ?", (run_id,)).fetchone()[0]
    if last is None:
        return {}
    df = pd.read_sql_query(
        "SELECT l.name, a.alpha_hat FROM alpha_layers a JOIN layers l ON l.run_id = a.run_id AND l.layer = a.layer "
        "WHERE a.run_id = ? AND a.step >= ? AND a.alpha_hat IS NOT NULL", con, params=(run_id, last // 2))
    return df.groupby("name")["alpha_hat"].median().to_dict()


def key_config(cfg):
    c = json.loads(json.dumps(cfg))
    c.pop("seed", None)
    for k in OUTSIDE_KEY:
        c.get("train", {}).pop(k, None)
    return plot.canonical(c)


# ---------------------------------------------------------------------------------------------
# Q1


def q1(con, out_dir):
    runs = load_runs(con, "study-q1-")
    if runs.empty:
        return "No Q1 run in the database yet.\n", pd.DataFrame()
    rows = []
    for r in runs.itertuples():
        t = r.cfg.get("train", {})
        lr, b = r.cfg["optimizer"]["lr"], t["batch_size"]
        rows.append(dict(run_id=r.id, model=r.model, status=r.status, lr=lr, batch_size=b,
                         lr_over_b=lr / b, noise=t.get("noise"), estimator=t.get("estimator"),
                         scope=t.get("scope"), alpha=run_alpha(con, r.id) if r.status == "finished" else math.nan))
    df = pd.DataFrame(rows)
    df["log10_lr_b"] = [math.log10(v) for v in df["lr_over_b"]]
    df.to_csv(os.path.join(out_dir, "q1_alpha.csv"), index=False)

    fits = fit_groups(df, ["model", "noise", "estimator", "scope"]).drop(columns="median_alpha")
    fits.to_csv(os.path.join(out_dir, "q1_slopes.csv"), index=False)

    layer_rows = []
    for r in df[(df["scope"] == "layer") & (df["status"] == "finished")].itertuples():
        for name, a in layer_alphas(con, r.run_id).items():
            layer_rows.append(dict(model=r.model, noise=r.noise, estimator=r.estimator, layer=name,
                                   log10_lr_b=r.log10_lr_b, alpha=a))
    layers = pd.DataFrame(layer_rows)
    layer_fits = pd.DataFrame()
    if not layers.empty:
        layers.to_csv(os.path.join(out_dir, "q1_layers.csv"), index=False)
        layer_fits = fit_groups(layers, ["model", "noise", "estimator", "layer"])[
            ["model", "noise", "estimator", "layer", "used", "median_alpha", "slope", "slope_lo", "slope_hi"]]
    if not layer_fits.empty:
        layer_fits.to_csv(os.path.join(out_dir, "q1_layer_slopes.csv"), index=False)

    q1_figure(df, layers, out_dir)
    return q1_text(df, fits, layer_fits), df


def q1_figure(df, layers, out_dir):
    models = sorted(df["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = df[df["model"] == model]
        for (noise, est, scope), p in part.groupby(["noise", "estimator", "scope"]):
            p = p.sort_values("log10_lr_b")
            ax.plot(p["log10_lr_b"], p["alpha"], "o", ms=3, alpha=0.7, label=f"{noise}/{est}/{scope}")
        ax.set_title(model)
        ax.set_xlabel("log10(lr / batch size)")
        ax.set_ylabel("alpha_hat (second half of training)")
        ax.legend(fontsize=7)
    save_figure(fig, out_dir, "q1_alpha_vs_lr_b.png")
    if layers.empty:
        return
    hill = layers[layers["estimator"] == "hill"]
    models = sorted(hill["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = hill[hill["model"] == model]
        for name, p in part.groupby("layer"):
            p = p.groupby("log10_lr_b")["alpha"].median()
            ax.plot(p.index, p.values, "-", lw=1, label=name)
        glob = df[(df["model"] == model) & (df["estimator"] == "hill") & (df["scope"] == "global") &
                  (df["noise"] == "probe")].groupby("log10_lr_b")["alpha"].median()
        ax.plot(glob.index, glob.values, "k-", lw=2.5, label="global (all coordinates)")
        ax.set_title(f"{model}: per layer (Hill, probe)")
        ax.set_xlabel("log10(lr / batch size)")
        ax.set_ylabel("alpha_hat")
        ax.legend(fontsize=6)
    save_figure(fig, out_dir, "q1_layers.png")


def q1_text(df, fits, layer_fits):
    t = ["Table Q1-a. Each point is one run (seed 0, plain SGD); its alpha_hat is the median over the second half "
         "of its steps. Slope: OLS of alpha_hat on log10(lr/b), 95% interval. A negative slope means "
         "heavier tails (smaller alpha) at larger lr/b, as the literature reports.", ""]
    rows = [[f.model, f.noise, f.estimator, f.scope, f"{f.used}/{f.cells}",
             f"{fmt(f.slope)} [{fmt(f.slope_lo)}, {fmt(f.slope_hi)}]", fmt(f.spearman, 2),
             f"{fmt(f.alpha_min, 2)} - {fmt(f.alpha_max, 2)}"] for f in fits.itertuples()]
    t.append(md_table(["model", "noise", "estimator", "scope", "runs used", "slope [95% CI]",
                       "Spearman", "alpha_hat range"], rows))
    t += ["", "Table Q1-b: agreement of the estimators, run by run (same trajectory: the estimator "
          "does not change the training).", ""]
    agree = []
    for (model, noise, scope), part in df.groupby(["model", "noise", "scope"]):
        piv = part.pivot_table(index=["lr", "batch_size"], columns="estimator", values="alpha")
        if {"hill", "stable"} <= set(piv.columns):
            piv = piv.dropna()
            if len(piv) >= 3:
                d = (piv["hill"] - piv["stable"])
                agree.append([model, noise, scope, len(piv), fmt(piv["hill"].corr(piv["stable"]), 2),
                              fmt(spearman(list(piv["hill"]), list(piv["stable"])), 2), fmt(d.median(), 2),
                              fmt(d.abs().max(), 2)])
    t.append(md_table(["model", "noise", "scope", "runs", "Pearson", "Spearman", "median hill - stable",
                       "largest abs. difference"], agree))
    if not layer_fits.empty:
        probe = layer_fits[layer_fits["noise"] == "probe"]
        t += ["", "Table Q1-c: per layer (probe noise, layer scope), summarised per model and estimator: each "
              "layer's median alpha_hat over the 16 runs, and how many layers have a slope whose 95% interval "
              "lies below 0 (heavier tails at larger lr/b) or above 0 (all layers: results/study/q1_layer_slopes.csv).",
              ""]
        rows = []
        for (model, est), part in probe.groupby(["model", "estimator"]):
            rows.append([model, est, len(part), f"{fmt(part['median_alpha'].min(), 2)} - {fmt(part['median_alpha'].max(), 2)}",
                         int((part["slope_hi"] < 0).sum()), int((part["slope_lo"] > 0).sum())])
        t.append(md_table(["model", "estimator", "layers", "median alpha_hat of the layers (range)",
                           "slope < 0", "slope > 0"], rows))
        t += ["", "Table Q1-d: every layer of the MLP and the CNN (Hill, probe noise).", ""]
        rows = [[f.model, f.layer, fmt(f.median_alpha, 2), f"{fmt(f.slope)} [{fmt(f.slope_lo)}, {fmt(f.slope_hi)}]"]
                for f in probe[(probe["estimator"] == "hill") & probe["model"].isin(["mlp", "cnn"])].itertuples()]
        t.append(md_table(["model", "layer", "median alpha_hat", "slope [95% CI]"], rows))
    t += ["", "Figure Q1-a: alpha_hat against lr/b, every run.", "", "![alpha_hat against lr/b](study/figures/q1_alpha_vs_lr_b.png)",
          "", "Figure Q1-b: per layer (thin) and global (thick), Hill on the probe noise.", "",
          "![per-layer alpha_hat against lr/b](study/figures/q1_layers.png)", ""]
    return "\n".join(t)


# ---------------------------------------------------------------------------------------------
# Q2 and Q3 through `htga report`


def grids_in(con, prefix):
    return [r[0] for r in con.execute("SELECT DISTINCT grid FROM runs WHERE grid LIKE ? ORDER BY grid",
                                      (prefix + "%",))]


def report(args, grids, compare, fmt_, extra=()):
    cmd = [args.htga, "report", "--db", args.db, "--compare", compare, "--adjust", "holm", "--format", fmt_]
    for g in grids:
        cmd += ["--grid", g]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"study_report: {' '.join(cmd)}: {p.stderr.strip()}")
    return json.loads(p.stdout) if fmt_ == "json" else p.stdout


def regime_of(row):
    n = row["config"]["dataset"].get("train_size", 0)
    return n if n else math.inf


def q2(args, con, out_dir):
    parts, all_rows = [], []
    for label, prefix, compare in [("vision", "study-q2-mlp", "sgd-clip"), ("vision", "study-q2-cnn", "sgd-clip"),
                                   ("text", "study-q2-text", "adam")]:
        grids = grids_in(con, prefix)
        if not grids:
            continue
        rows = report(args, grids, compare, "json")
        for r in rows:
            r["regime"] = regime_of(r)
            r["compare"] = compare
        all_rows += rows
        parts.append((prefix, grids, compare, rows))
    if not all_rows:
        return "No Q2 run in the database yet.\n", []
    pd.DataFrame([{k: v for k, v in r.items() if k not in ("config", "test_values", "seeds")}
                  for r in all_rows]).to_csv(os.path.join(out_dir, "q2_summary.csv"), index=False)
    t = ["Table Q2. Per regime, the configuration of each family with the best mean validation accuracy "
         "(9 per family), reported on the test set over its seeds. diff: HTGA minus the baseline, "
         "paired by seed, 95% interval; p: paired t-test, Holm-adjusted across every comparison of "
         "the same report (one report per model). Gap: train minus test accuracy.", ""]
    table = []
    for prefix, grids, compare, rows in parts:
        by_group = {}
        for r in rows:
            by_group.setdefault(r["group"], []).append(r)
        for group, rs in sorted(by_group.items(), key=lambda kv: regime_of(kv[1][0])):
            base = next((r for r in rs if r["baseline"]), None)
            sel = next((r for r in rs if r["selected"] and r["optimizer"] == "htga"), None)
            if not base or not sel:
                continue
            n = base["config"]["dataset"].get("train_size", 0) or "full"
            table.append([rs[0]["model"], rs[0]["dataset"], n, compare,
                          f"{pp(base['mean'])} [{pp(base['ci_low'])}, {pp(base['ci_high'])}]",
                          f"{pp(sel['mean'])} [{pp(sel['ci_low'])}, {pp(sel['ci_high'])}]",
                          f"{pp(sel['diff'], True)} [{pp(sel['diff_ci_low'], True)}, {pp(sel['diff_ci_high'], True)}]",
                          pval(sel["p_t_adj"]), pp(base["gen_gap"]), pp(sel["gen_gap"]),
                          f"{sel['label']}", f"{base['label']}", f"{sel['n']}/{base['n']}"])
    t.append(md_table(["model", "dataset", "train size", "baseline", "baseline acc % [CI]", "HTGA acc % [CI]",
                       "diff pp [CI]", "p (Holm)", "gap base", "gap HTGA", "HTGA selected", "baseline selected",
                       "seeds"], table))
    q2_figure(all_rows, out_dir)
    t += ["", "Figure Q2-a: test accuracy of each family's selected configuration per regime, 95% intervals.", "",
          "![test accuracy per regime](study/figures/q2_regimes.png)", ""]
    t += ["", "The reports as `htga report --adjust holm --format markdown` prints them:", ""]
    for prefix, grids, compare, _ in parts:
        t += [f"#### {prefix}-* (baseline {compare})", "", report(args, grids, compare, "markdown").strip(), ""]
    return "\n".join(t), all_rows


def q2_figure(rows, out_dir):
    models = sorted({(r["model"], r["dataset"]) for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 3.6), squeeze=False)
    for ax, (model, dataset) in zip(axes[0], models):
        for fam, color in [("htga", "C1"), ("sgd-clip", "C0"), ("adam", "C0")]:
            sel = sorted((r for r in rows if r["model"] == model and r["dataset"] == dataset and r["selected"]
                          and r["optimizer"] == fam), key=lambda r: r["regime"])
            if not sel:
                continue
            xs = list(range(len(sel)))
            ys = [100 * r["mean"] for r in sel]
            err = [[100 * (r["mean"] - r["ci_low"]) for r in sel], [100 * (r["ci_high"] - r["mean"]) for r in sel]]
            ax.errorbar([x + (0.08 if fam == "htga" else -0.08) for x in xs], ys, yerr=err, fmt="o-", color=color,
                        capsize=3, label=fam)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(r["config"]["dataset"].get("train_size", 0) or "full") for r in sel])
        ax.set_title(f"{dataset} / {model}")
        ax.set_xlabel("training examples")
        ax.set_ylabel("test accuracy % (95% CI)")
        ax.legend(fontsize=8)
    save_figure(fig, out_dir, "q2_regimes.png")


def q3(args, con, out_dir):
    grids = grids_in(con, "study-q3-")
    if not grids:
        return "No Q3 run in the database yet.\n"
    rows = report(args, grids, "sgd-clip", "json", ["--select", "all"])
    variants = [r for r in rows if r["optimizer"] == "htga"]
    full = next((r for r in variants if r["label"] == "" or "full" in r["label"]), None)
    # The full HTGA is the configuration the ablation grid names as such (variant "full").
    for r in variants:
        if r["config"].get("optimizer", {}).get("beta") and r["config"]["train"].get("scope") == "global" \
                and r["config"]["train"].get("estimator") == "hill" and r["config"]["train"].get("alpha_every") == 1 \
                and not r["config"]["optimizer"].get("alpha0_explore") and not r["config"]["optimizer"].get("alpha0_final"):
            full = r
    def variant(r):
        if full is None or r is full:
            return "full HTGA" if r is full else r["label"]
        diffs = []
        for part in ("optimizer", "train", "dataset", "model"):
            a, b = r["config"].get(part, {}), full["config"].get(part, {})
            diffs += [f"{k}={a.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        return ", ".join(diffs) if r["optimizer"] == "htga" else r["optimizer"] + " (selected in Q2)"

    # Holm over the HTGA variants' paired t-tests against sgd-clip (the report adjusts only the
    # selected configurations, and --select all shows every one).
    tests = sorted((r["p_t"], i) for i, r in enumerate(rows) if r["optimizer"] == "htga" and r["p_t"] is not None)
    holm, running = {}, 0.0
    for rank, (p, i) in enumerate(tests):
        running = max(running, min(1.0, (len(tests) - rank) * p))
        holm[i] = running
    for i, r in enumerate(rows):
        r["p_holm"] = holm.get(i)
    t = ["Table Q3. Each variant changes one thing of the full HTGA configuration (10 fresh seeds, 10-19, "
         "not the seeds the configuration was selected on). diff: the variant "
         "minus the full HTGA, paired by seed, 95% interval; p: paired t-test against the selected sgd-clip, "
         "Holm-adjusted over the HTGA variants.", ""]
    table = []
    out = []
    for r in sorted(rows, key=lambda r: (r["optimizer"] != "htga", r["label"])):
        vals = dict(zip(r["seeds"], [v if v is not None else math.nan for v in r["test_values"]]))
        fvals = dict(zip(full["seeds"], [v if v is not None else math.nan for v in full["test_values"]])) \
            if full else {}
        n, m, lo, hi = paired(vals, fvals) if full and r is not full else (0, math.nan, math.nan, math.nan)
        name = variant(r)
        table.append([r["optimizer"], name, f"{pp(r['mean'])} [{pp(r['ci_low'])}, {pp(r['ci_high'])}]",
                      f"{pp(m, True)} [{pp(lo, True)}, {pp(hi, True)}]" if n else "-",
                      f"{pp(r['diff'], True)}" if r["diff"] is not None else "-", pval(r["p_holm"]),
                      fmt(r["alpha_hat_median"], 2), r["n"]])
        out.append(dict(optimizer=r["optimizer"], variant=name, mean=r["mean"], ci_low=r["ci_low"],
                        ci_high=r["ci_high"], diff_vs_full=m, diff_vs_full_lo=lo, diff_vs_full_hi=hi,
                        diff_vs_sgd_clip=r["diff"], p_vs_sgd_clip=r["p_t"], p_holm_vs_sgd_clip=r["p_holm"], n=r["n"]))
    pd.DataFrame(out).to_csv(os.path.join(out_dir, "q3_ablations.csv"), index=False)
    t.append(md_table(["optimizer", "variant", "test acc % [CI]", "vs full HTGA pp [CI]", "vs sgd-clip pp",
                       "p vs sgd-clip (Holm)", "alpha_hat median", "seeds"], table))
    t += ["", "`htga report --select all --adjust holm --format markdown`:", "",
          report(args, grids, "sgd-clip", "markdown", ["--select", "all"]).strip(), ""]
    return "\n".join(t)


def alpha_over_steps(con, out_dir, q2_rows):
    """alpha_hat over steps for the selected configurations of the 1000-example MLP regime."""
    sel = [r for r in q2_rows if r["selected"] and r["model"] == "mlp" and r["regime"] == 1000]
    if not sel:
        return ""
    runs = load_runs(con, "study-q2-mlp-1000")
    runs["key"] = [key_config(c) for c in runs["cfg"]]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r, color in zip(sel, ["C0", "C1", "C2"]):
        ids = runs[runs["key"] == plot.canonical(r["config"])]["id"]
        series = [plot.binned_steps(con, int(i), "alpha_hat") for i in ids]
        series = [s for s in series if not s.empty]
        if series:
            plot.band(ax, series, f"{r['optimizer']} {r['label']}", color)
    ax.set_xlabel("step")
    ax.set_ylabel("alpha_hat (online noise, Hill)")
    ax.set_title("Fashion-MNIST, MLP, 1000 examples: median over seeds, band = range")
    ax.legend(fontsize=7)
    save_figure(fig, out_dir, "alpha_over_steps.png")
    return ("Figure Q2-b: alpha_hat over the steps of the selected configurations, MLP, 1000 examples.\n\n"
            "![alpha_hat over steps](study/figures/alpha_over_steps.png)\n")


def setup_text(con, root):
    timing = os.path.join(root, "study", "timing.tsv")
    total = 0
    per_grid = {}
    if os.path.exists(timing):
        df = pd.read_csv(timing, sep="\t")
        total = int(df["seconds"].sum())
        per_grid = {"study-" + k: v for k, v in df.groupby("grid")["seconds"].sum().to_dict().items()}
    cells = dict(con.execute("SELECT grid, count(*) FROM runs WHERE grid LIKE 'study-%' GROUP BY grid").fetchall())
    train = dict(con.execute("SELECT grid, sum(train_time_s) FROM runs WHERE grid LIKE 'study-%' GROUP BY grid"))
    commit = con.execute("SELECT git_commit FROM runs WHERE grid LIKE 'study-%' ORDER BY id DESC LIMIT 1").fetchone()
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = [[g, cells.get(g, 0), f"{per_grid.get(g, 0) / 60:.1f}", f"{(train.get(g) or 0) / max(1, cells.get(g, 1)):.1f}"]
            for g in sorted(cells)]
    t = [f"Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; htga "
         f"{commit[0] if commit else '?'}; `--jobs 2`, one thread per cell. Measured wall time of the whole "
         f"study: **{total / 60:.1f} minutes** (sum over the calls of scripts/study, results/study/timing.tsv). "
         "The first measurement was taken while the same 2 cores also compiled htga at a lower priority "
         "for part of the time: a quiet machine is somewhat faster.", "",
         md_table(["grid", "cells", "wall minutes", "training seconds per cell"], rows), ""]
    return "\n".join(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="results/study/study.db")
    ap.add_argument("--out", default="results")
    ap.add_argument("--htga", default="build/htga")
    args = ap.parse_args()
    if not os.path.exists(args.db):
        sys.exit(f"study_report: {args.db}: no such database (run scripts/study first)")
    out_dir = os.path.join(args.out, "study")
    os.makedirs(os.path.join(out_dir, "figures"), exist_ok=True)
    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    q1_md, _ = q1(con, out_dir)
    q2_md, q2_rows = q2(args, con, out_dir)
    q3_md = q3(args, con, out_dir)
    steps_md = alpha_over_steps(con, out_dir, q2_rows)
    runs = pd.read_sql_query("SELECT id, grid, cell_key, status, dataset, model, optimizer, seed, test_metric, "
                             "val_metric, test_loss, train_acc, steps FROM runs WHERE grid LIKE 'study-%' ORDER BY id", con)
    runs.to_csv(os.path.join(out_dir, "runs.csv"), index=False)
    head_path = os.path.join(out_dir, "intro.md")
    concl_path = os.path.join(out_dir, "conclusions.md")
    read = lambda p: open(p).read().strip() + "\n" if os.path.exists(p) else ""  # noqa: E731
    doc = [read(head_path), "## Setup and budget", "", setup_text(con, args.out),
           "## Conclusions", "", read(concl_path) or "(not written yet)", "",
           "## Q1: is the gradient noise heavy-tailed, and how does alpha move with lr/b?", "", q1_md,
           "## Q2: HTGA against the tuned baseline with little data", "", q2_md, steps_md,
           "## Q3: which parts of HTGA matter", "", q3_md]
    with open(os.path.join(args.out, "STUDY.md"), "w") as f:
        f.write("\n".join(doc))
    print(f"study_report: wrote {os.path.join(args.out, 'STUDY.md')} and {out_dir}/")


if __name__ == "__main__":
    main()
