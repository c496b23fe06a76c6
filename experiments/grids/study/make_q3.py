#!/usr/bin/env python3
"""Writes the Q3 ablation grids (q3-*.json) from Q2's selection in one regime: the full HTGA is the
configuration `htga report` selected on validation there, and each ablation changes one thing of
it. They run on fresh seeds (10-19), not the ones the configuration was selected on.

    experiments/grids/study/make_q3.py GRID_NAME [--db results/study/study.db] [--htga build/htga]
"""
import argparse
import json
import os
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("grid", help="the Q2 grid whose regime is ablated, e.g. study-q2-mlp-250")
ap.add_argument("--db", default="results/study/study.db")
ap.add_argument("--htga", default="build/htga")
args = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
src = json.load(open(os.path.join(here, args.grid.replace("study-", "") + ".json")))
rows = json.loads(subprocess.run([args.htga, "report", "--db", args.db, "--grid", args.grid, "--format", "json"],
                                 capture_output=True, text=True, check=True).stdout)
pick = {r["optimizer"]: r["config"] for r in rows if r["selected"]}
htga, base = pick["htga"]["optimizer"], pick["sgd-clip"]["optimizer"]
seeds = list(range(10, 20))


def dump(name, defaults, optimizers):
    g = {"name": f"study-q3-{name}", "defaults": defaults, "datasets": src["datasets"], "models": src["models"],
         "optimizers": optimizers, "seeds": seeds}
    with open(os.path.join(here, f"q3-{name}.json"), "w") as f:
        f.write("{\n" + ",\n".join(f'  "{k}": {json.dumps(v)}' for k, v in g.items()) + "\n}\n")


d = src["defaults"]
alpha0 = htga["alpha0"]
dump("full", d, [base, htga,
                 dict(htga, beta=0.0),                       # the control: clipped SGD at lr0
                 dict(htga, alpha0_explore=alpha0 - 0.5),    # amplify heavy tails on plateaus
                 dict(htga, alpha0_final=alpha0 + 0.5)])     # moderate them while fine-tuning
dump("layer", dict(d, scope="layer"), [htga])
dump("stable", dict(d, estimator="stable"), [htga])
dump("every10", dict(d, alpha_every=10), [htga])
print("q3 grids from", args.grid, "full HTGA:", htga, "baseline:", base)
