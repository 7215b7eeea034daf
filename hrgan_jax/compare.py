"""Compare training runs: one markdown table and one plot of the evaluation metric.

    python launch.py --mode=compare --workdirs=RUN_A,RUN_B,... [--out=DIR]

Each workdir is read as the trainer leaves it, finished or still running: ``config.json``
(what the run is: HRNet alone, HRGAN, HRGAN without boundary equilibrium, with the
target weight inside D, a conventional GAN D (``d_output`` image or joint), and any
non-default beta_G, gamma, lambda_k), ``eval/results_<step>.json`` (the evaluation metric
over steps, and ``pose_spread``, evaluation.collapse: 0 when G predicts one pose for
everyone) and ``metrics.jsonl`` (k_t, a conventional D's accuracy on real and fake and,
where the run logged them, the adversary's share of G's gradient).  The paper's ablation table is then a
matter of pointing this at the runs, wherever they were trained.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from hrgan_jax import draw

# Per dataset: the headline metric, and the columns the table shows beside it.
COLUMNS = {"coco": ("AP", ("Ap .5", "AP .75", "AP (M)", "AP (L)", "AR")),
           "mpii": ("Mean", ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"))}
DEFAULTS = {"beta_g": 1e-4, "gamma": 0.5, "lambda_k": 1e-3}


def _metric(dataset: str) -> tuple[str, tuple[str, ...], float]:
    """(headline, other columns, scale to percent) of a dataset's evaluation table."""
    headline, others = COLUMNS.get(dataset, COLUMNS["coco"])
    return headline, others, 1.0 if dataset == "mpii" else 100.0  # COCO's fractions as %


class CompareError(ValueError):
    """A workdir that is not a training run (the message names it)."""


def variant(config: dict) -> str:
    """A run's name in the paper's terms, from its config.json."""
    adv = config.get("adversarial", {})
    if not adv.get("enabled", True):
        return "HRNet"
    d_output = adv.get("d_output", "reconstruct")
    if d_output != "reconstruct":  # the conventional GAN discriminators; k_t does not exist
        name = f"GAN, D {d_output}" + ("" if adv.get("gan_loss", "bce") == "bce" else
                                       f" {adv['gan_loss']}")
        if adv.get("d_network", ""):
            name += f", trunk {adv['d_network']}"
        return name + (f" (beta_g {adv['beta_g']:g})" if adv.get("beta_g", 1e-4) != 1e-4 else "")
    name = "HRGAN"
    if not adv.get("equilibrium", True):
        name += ", no equilibrium"
    if adv.get("target_weight_in_d", False):
        name += ", target weight in D"
    if adv.get("d_network", ""):
        name += f", D {adv['d_network']}"
    changed = [f"{k} {adv[k]:g}" for k, v in DEFAULTS.items() if k in adv and adv[k] != v]
    return name + (f" ({', '.join(changed)})" if changed else "")


def read_run(workdir: str) -> dict:
    """{name (the variant), label (the variant and the workdir's name: a row's name), workdir,
    seed, dataset, evaluations: {step: results}, history: [rows]}."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise CompareError(f"{workdir}: no config.json, so not a training workdir")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:  # unreadable, or not JSON (cut short, edited)
        raise CompareError(f"{path}: cannot read the run's config ({type(e).__name__}: "
                           f"{' '.join(str(e).split())}); the trainer writes it at the start: "
                           f"restore it, or leave this workdir out") from None
    if not isinstance(config, dict):
        raise CompareError(f"{path}: expected the run's config (a JSON object), got "
                           f"{type(config).__name__}")
    return {"name": variant(config), "workdir": workdir,
            "label": f"{variant(config)} ({os.path.basename(os.path.normpath(workdir))})",
            "seed": config.get("seed", 0),
            "dataset": config.get("data", {}).get("name", "coco"),
            "evaluations": draw.read_evaluations(workdir),
            "history": list(draw.read_metrics(workdir).values())}


def _fmt(value, scale: float = 1.0, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def summary(run: dict) -> dict:
    """Best and final evaluation, and the k_t and gradient-ratio figures of one run."""
    dataset = run["dataset"]
    headline, _ = COLUMNS.get(dataset, COLUMNS["coco"])
    evals = run["evaluations"]
    scored = [(r.get(headline), s) for s, r in evals.items() if r.get(headline) is not None]
    best_value, best_step = max(scored) if scored else (None, None)
    final_step = max(evals) if evals else None
    ks = [r["k"] for r in run["history"] if "k" in r]
    ratios = [r["adv_grad_ratio"] for r in run["history"] if "adv_grad_ratio" in r]
    accuracy = [(r["d_real_acc"], r["d_fake_acc"]) for r in run["history"] if "d_real_acc" in r]
    final = evals[final_step] if final_step is not None else {}
    return {"pose_spread": final.get("pose_spread"),
            "d_acc": accuracy[-1] if accuracy else None,"best": best_value, "best_step": best_step, "final_step": final_step,
            "final": final,
            "k_final": ks[-1] if ks else None, "k_max": max(ks) if ks else None,
            "k_positive": float(np.mean([k > 0 for k in ks])) if ks else None,
            "ratio_median": float(np.median(ratios)) if ratios else None}


def table(runs: list[dict]) -> str:
    """The markdown table: one row per run, named by its variant and workdir."""
    dataset = runs[0]["dataset"]
    headline, others, scale = _metric(dataset)
    header = (["run", "seed", f"best {headline} %", "at step", f"final {headline} %", "at step"]
              + [f"final {c} %" for c in others]
              + ["final pose spread", "k_t final", "k_t max", "steps with k_t > 0",
                 "median adv/content grad", "last D acc real/fake"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        s = summary(run)
        final = s["final"]
        cells = ([run.get("label", run["name"]), str(run["seed"]), _fmt(s["best"], scale),
                  str(s["best_step"] if s["best_step"] is not None else "-"),
                  _fmt(final.get(headline), scale),
                  str(s["final_step"] if s["final_step"] is not None else "-")]
                 + [_fmt(final.get(c), scale) for c in others]
                 + [_fmt(s["pose_spread"]), _fmt(s["k_final"], digits=6),
                    _fmt(s["k_max"], digits=6),
                    _fmt(s["k_positive"], 100.0, 0) + ("%" if s["k_positive"] is not None else ""),
                    _fmt(s["ratio_median"], digits=4),
                    "/".join(_fmt(a, digits=2) for a in s["d_acc"]) if s["d_acc"] else "-"])
        lines.append("| " + " | ".join(cells) + " |")
    unit = "PCKh@0.5" if dataset == "mpii" else "COCO OKS AP and AR (the evaluation's fractions x 100)"
    return "\n".join(lines) + (f"\n\nIn %: {unit}, and the steps with k_t > 0.  Fractions: pose "
                               f"spread (1 as varied as the true poses, 0 one pose for all: "
                               f"evaluation.collapse) and D's accuracy.  k_t, the gradient ratio "
                               f"and D's accuracy from metrics.jsonl.\n")


def by_variant(runs: list[dict]) -> str:
    """The markdown table over runs: one row per variant (runs with the same name), the
    mean, lowest and highest of the best and of the final headline metric, and the runs'
    number and seeds; empty when no variant has more than one run."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["name"], []).append(run)
    if all(len(g) < 2 for g in groups.values()):
        return ""
    headline, _, scale = _metric(runs[0]["dataset"])

    def spread(values, scale=scale):
        values = [v * scale for v in values if v is not None]
        if not values:
            return "-"
        return f"{np.mean(values):.2f} ({min(values):.2f} to {max(values):.2f})"

    lines = [f"| variant | runs | best {headline} %: mean (range) | final {headline} %: mean (range) "
             f"| median adv/content grad | final pose spread: mean (range) |",
             "|---|---|---|---|---|---|"]
    for name, group in groups.items():
        summaries = [summary(r) for r in group]
        ratios = [x["ratio_median"] for x in summaries if x["ratio_median"] is not None]
        lines.append("| " + " | ".join([
            name, _runs_and_seeds([r["seed"] for r in group]),
            spread([x["best"] for x in summaries]),
            spread([x["final"].get(headline) for x in summaries]),
            _fmt(float(np.median(ratios)) if ratios else None, digits=4),
            spread([x["pose_spread"] for x in summaries], 1.0)]) + " |")
    return "\n".join(lines) + "\n"


def _runs_and_seeds(seeds: list[int]) -> str:
    """'1, seed 0'; '2, seeds 0 and 1'; runs that share a seed say so ('2, all seed 0'),
    since they are repeats rather than other seeds."""
    distinct = sorted(set(seeds))
    if len(seeds) == 1:
        return f"1, seed {seeds[0]}"
    if len(distinct) == len(seeds):
        return f"{len(seeds)}, seeds " + ", ".join(str(s) for s in distinct[:-1]) + f" and {distinct[-1]}"
    if len(distinct) == 1:
        return f"{len(seeds)}, all seed {distinct[0]}"
    counts = ", ".join(f"{s} (x{seeds.count(s)})" if seeds.count(s) > 1 else str(s)
                       for s in distinct)
    return f"{len(seeds)}, seeds {counts}"


def plot(runs: list[dict], path: str) -> str:
    """The evaluation metric against the step, one line per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    headline, _ = COLUMNS.get(runs[0]["dataset"], COLUMNS["coco"])
    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for run in runs:
        points = [(s, r[headline]) for s, r in run["evaluations"].items() if headline in r]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o", markersize=3, linewidth=1.2,
                    label=f"{run.get('label', run['name'])}, seed {run['seed']}")
    ax.set_xlabel("step")
    ax.set_ylabel(headline)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path


def compare(workdirs: list[str], out: str) -> tuple[str, str]:
    """Write OUT/compare.md and OUT/compare.png for the runs; returns their paths."""
    if not workdirs:
        raise CompareError("--mode=compare needs --workdirs=RUN_A,RUN_B,...")
    runs = [read_run(w) for w in workdirs]
    datasets = sorted({r["dataset"] for r in runs})
    if len(datasets) > 1:
        raise CompareError(f"the runs evaluate different datasets ({', '.join(datasets)}): "
                           f"compare runs of one dataset")
    os.makedirs(out, exist_ok=True)
    md = os.path.join(out, "compare.md")
    with open(md, "w") as f:
        f.write(table(runs))
        over_seeds = by_variant(runs)
        if over_seeds:
            f.write("\nEach variant over its runs:\n\n" + over_seeds)
    png = plot(runs, os.path.join(out, "compare.png"))
    return md, png
