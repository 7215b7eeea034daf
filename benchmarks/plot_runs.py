"""k_t, L_real and L_fake of training runs side by side, from their metrics.jsonl.

    python benchmarks/plot_runs.py --runs bfloat16=/tmp/demo_bf16,float32=/tmp/demo_f32 \
        --out docs/demo_bf16_f32.png

One panel per metric, one line per run (the logged points: means over
config.train.log_every steps).
"""
from __future__ import annotations

import argparse
import json
import os

METRICS = ("k", "l_real", "l_fake")


def read(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True, help="NAME=WORKDIR,... (one line per run)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = dict(entry.split("=", 1) for entry in args.runs.split(","))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
    for name, workdir in runs.items():
        points = [r for r in read(workdir) if all(m in r for m in METRICS)]
        steps = [r["step"] for r in points]
        for ax, metric in zip(axes, METRICS):
            ax.plot(steps, [r[metric] for r in points], label=name)
    for ax, metric in zip(axes, METRICS):
        ax.set_title(metric)
        ax.set_xlabel("step")
        if metric != "k":
            ax.set_yscale("log")
        ax.legend()
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
