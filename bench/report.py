#!/usr/bin/python3
"""Aggregates the per-process results of bench/run.sh into the closing table.

Reads <results>/runs/r<round>_<engine>_<arch>_b<batch>.json (one JSON line
from kn_bench, ref_torch.py or ref_ort.js; a .err file beside it holds the
process's stderr) and <results>/sgemm_*.json, and writes
<results>/latest.md and <results>/latest.json, printing the markdown.

Statistics, the same for every engine:
- per process (one round of one cell): median and p90 (nearest rank) of the
  timed runs; images/s = batch / median time; peak RSS = VmHWM at exit.
- across rounds: the median of the per-round values (peak RSS: median too,
  the max is in the JSON).
Ratios are kennel / reference: latency < 1 and throughput > 1 mean kennel is
faster.

Standard library only, so it runs with any python3.
"""

import argparse
import glob
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ENGINES = ["kennel", "onnxruntime", "pytorch"]
LABEL = {"kennel": "kennel", "onnxruntime": "ONNX Runtime", "pytorch": "PyTorch"}
NAME_RE = re.compile(r"r(\d+)_(kennel|onnxruntime|pytorch)_(.+)_b(\d+)\.json$")


def p90(xs):
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        return lines[-1] if lines else ""
    except OSError:
        return ""


def load_runs(rundir):
    cells = {}  # (arch, batch, engine) -> list of per-round dicts
    errors = []
    for path in sorted(glob.glob(os.path.join(rundir, "*.json"))):
        m = NAME_RE.search(os.path.basename(path))
        if not m:
            continue
        rnd, engine, arch, batch = int(m[1]), m[2], m[3], int(m[4])
        rec = None
        try:
            with open(path) as f:
                lines = [l for l in f if l.strip().startswith("{")]
            rec = json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            rec = None
        if not rec or not rec.get("times_ms"):
            err = last_line(path[:-5] + ".err") or "no output"
            errors.append({"round": rnd, "engine": engine, "arch": arch, "batch": batch,
                           "error": err})
            continue
        t = rec["times_ms"]
        m_ms = statistics.median(t)
        cells.setdefault((arch, batch, engine), []).append({
            "round": rnd,
            "median_ms": m_ms,
            "p90_ms": p90(t),
            "min_ms": min(t),
            "images_per_s": batch * 1000.0 / m_ms,
            "vmhwm_mb": rec.get("vmhwm_kb", -1) / 1024.0,
            "vmrss_end_mb": rec.get("vmrss_kb", -1) / 1024.0,
            "setup_ms": rec.get("setup_ms"),
            "iters": len(t),
            "rec": rec,
        })
    return cells, errors


NOISY = 1.25  # max / min of the per-round values above this marks a cell


def spread(xs):
    xs = [x for x in xs if x]
    return max(xs) / min(xs) if xs else None


def summarize(rounds):
    return {
        "spread_median_ms": spread([r["median_ms"] for r in rounds]),
        "rounds": len(rounds),
        "median_ms": med([r["median_ms"] for r in rounds]),
        "p90_ms": med([r["p90_ms"] for r in rounds]),
        "images_per_s": med([r["images_per_s"] for r in rounds]),
        "peak_rss_mb": med([r["vmhwm_mb"] for r in rounds]),
        "peak_rss_mb_max": max(r["vmhwm_mb"] for r in rounds),
        "rss_end_mb": med([r["vmrss_end_mb"] for r in rounds]),
        "setup_ms": med([r["setup_ms"] for r in rounds]),
        "timed_runs_per_round": rounds[0]["iters"],
        "mode": rounds[0]["rec"].get("mode"),
        "version": rounds[0]["rec"].get("version"),
        "threads": rounds[0]["rec"].get("threads"),
    }


def parity(cells, arch, a, b):
    """Max |logit difference| / max |logit| over the first logits of sample 0,
    batch-1 runs of engines a and b (meaningful only with the same weights)."""
    ra, rb = cells.get((arch, 1, a)), cells.get((arch, 1, b))
    if not ra or not rb:
        return None
    ha, hb = ra[0]["rec"].get("out_head"), rb[0]["rec"].get("out_head")
    scale = max(ra[0]["rec"].get("out_absmax") or 0, rb[0]["rec"].get("out_absmax") or 0)
    if not ha or not hb or not scale:
        return None
    return max(abs(x - y) for x, y in zip(ha, hb)) / scale


def fmt(x, nd=1):
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return f"{x:.{nd}f}"


def ratio(a, b):
    return a / b if a and b else None


def git_rev(root):
    try:
        r = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        rev = r.stdout.strip() or "no commit"
        d = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src", "include"],
                           capture_output=True, text=True, timeout=10)
        return rev + ("+uncommitted" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--root", default=".")
    ap.add_argument("--models", default="resnet50 mobilenet_v2")
    ap.add_argument("--batches", default="1 8 32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", action="append", default=[], help="extra line for the notes")
    ap.add_argument("--elapsed-s", type=float)
    ap.add_argument("--kennel-label", help="engine label for kennel (default: git revision)")
    a = ap.parse_args()

    models, batches = a.models.split(), [int(b) for b in a.batches.split()]
    cells, errors = load_runs(os.path.join(a.results, "runs"))
    summary = {f"{arch}/b{b}/{e}": summarize(rs) for (arch, b, e), rs in sorted(cells.items())}

    def s(arch, b, e, key):
        v = summary.get(f"{arch}/b{b}/{e}")
        return v[key] if v else None

    n_noisy = [0]

    def timed(arch, b, e, key, nd):
        """A timing cell, starred when its rounds disagree by more than NOISY."""
        txt = fmt(s(arch, b, e, key), nd)
        sp = s(arch, b, e, "spread_median_ms")
        if sp and sp > NOISY:
            n_noisy[0] += 1
            txt += "*"
        return txt

    # sgemm peak: best over the measurements taken at the start and end of the run.
    sgemm = []
    for path in sorted(glob.glob(os.path.join(a.results, "sgemm_*.json"))):
        line = last_line(path)
        try:
            sgemm.append(json.loads(line))
        except ValueError:
            pass
    peak = max((x.get("peak_gflops", 0) for x in sgemm), default=0) or None

    # FLOPs per image: counted by ref_torch.py (conv + linear multiply-adds x2);
    # kennel's own count is kept for a cross-check.
    flops = {}
    for arch in models:
        ft = fk = None
        for (ar, b, e), rs in cells.items():
            if ar != arch:
                continue
            f = rs[0]["rec"].get("flops_per_image")
            if e == "pytorch" and f:
                ft = f
            if e == "kennel" and f:
                fk = f
        default = {"resnet50": 8.18e9, "mobilenet_v2": 0.60e9}.get(arch)
        flops[arch] = {"pytorch_count": ft, "kennel_count": fk, "used": ft or fk or default}

    versions = {}
    for e in ENGINES:
        for key, v in summary.items():
            if key.endswith("/" + e):
                versions[e] = v["version"]
                break
    engine_label = {
        "kennel": a.kennel_label or f"kennel {git_rev(a.root)}",
        "onnxruntime": f"ONNX Runtime {versions.get('onnxruntime', '')}".strip(),
        "pytorch": f"PyTorch {versions.get('pytorch', '')}".strip(),
    }
    modes = {}
    for e in ENGINES:
        for key, v in summary.items():
            if key.endswith("/" + e):
                modes[e] = v["mode"]
                break

    rounds = max((len(v) for v in cells.values()), default=0)
    date = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    md = []
    md.append(f"### CNN inference: kennel vs ONNX Runtime vs PyTorch (fp32, {a.threads} threads)")
    md.append("")
    md.append(f"{date}, {cpu_model()}, {os.cpu_count()} CPUs; {rounds} interleaved rounds, "
              "one process per engine x model x batch x round; medians across rounds.")
    md.append("")
    bh = " | ".join(f"b{b} img/s" for b in batches if b != 1)
    rh = " / ".join(f"b{b}" for b in batches)
    md.append(f"| model | engine | b1 median ms | b1 p90 ms | {bh} | peak RSS MB {rh} |")
    md.append("|---|---|---:|---:|" + "---:|" * len([b for b in batches if b != 1]) + "---:|")
    for arch in models:
        for e in ENGINES:
            row = [arch, engine_label[e], timed(arch, 1, e, "median_ms", 2),
                   fmt(s(arch, 1, e, "p90_ms"), 2)]
            row += [timed(arch, b, e, "images_per_s", 1) for b in batches if b != 1]
            row.append(" / ".join(fmt(s(arch, b, e, "peak_rss_mb"), 0) for b in batches))
            md.append("| " + " | ".join(row) + " |")
    if n_noisy[0]:
        md.append("")
        md.append(f"\\* rounds disagree by more than {NOISY:.2f}x (max / min of the per-round "
                  "medians): the machine was busy; per-round values are in latest.json.")
    md.append("")

    ratios = {}
    hdr = ["model", "b1 latency kennel/ORT", "b1 latency kennel/PyTorch"]
    for b in batches:
        if b != 1:
            hdr += [f"b{b} throughput kennel/ORT", f"b{b} throughput kennel/PyTorch"]
    md.append("Ratios (latency below 1 and throughput above 1 mean kennel is faster):")
    md.append("")
    md.append("| " + " | ".join(hdr) + " |")
    md.append("|---|" + "---:|" * (len(hdr) - 1))
    for arch in models:
        k1 = s(arch, 1, "kennel", "median_ms")
        r = {"latency_b1_kennel_over_ort": ratio(k1, s(arch, 1, "onnxruntime", "median_ms")),
             "latency_b1_kennel_over_pytorch": ratio(k1, s(arch, 1, "pytorch", "median_ms"))}
        row = [arch, fmt(r["latency_b1_kennel_over_ort"], 2),
               fmt(r["latency_b1_kennel_over_pytorch"], 2)]
        for b in batches:
            if b == 1:
                continue
            kb = s(arch, b, "kennel", "images_per_s")
            r[f"throughput_b{b}_kennel_over_ort"] = ratio(kb, s(arch, b, "onnxruntime",
                                                                "images_per_s"))
            r[f"throughput_b{b}_kennel_over_pytorch"] = ratio(kb, s(arch, b, "pytorch",
                                                                    "images_per_s"))
            row += [fmt(r[f"throughput_b{b}_kennel_over_ort"], 2),
                    fmt(r[f"throughput_b{b}_kennel_over_pytorch"], 2)]
        ratios[arch] = r
        md.append("| " + " | ".join(row) + " |")
    md.append("")

    floor = {}
    if peak:
        sg = max(sgemm, key=lambda x: x.get("peak_gflops", 0))
        lib = ("oneDNN" if sg.get("engine") == "dnnl_sgemm"
               else f"OpenBLAS {sg.get('corename', '?')} kernels")
        md.append(f"Compute floor: FLOPs per image / measured sgemm peak {peak:.0f} GFLOP/s "
                  f"({lib}, {sg.get('threads')} threads, best of square 1024-3072 products "
                  "over OpenBLAS and oneDNN at the start and end of the run; an engine can "
                  "beat it slightly, since a square sgemm is not the fastest fp32 kernel):")
        md.append("")
        md.append("| model | GFLOP/image | floor ms/image | b1: kennel / ORT / PyTorch "
                  "x floor |")
        md.append("|---|---:|---:|---:|")
        for arch in models:
            f = flops[arch]["used"]
            fl_ms = f / (peak * 1e9) * 1e3
            xs = [ratio(s(arch, 1, e, "median_ms"), fl_ms) for e in ENGINES]
            floor[arch] = {"gflop_per_image": f / 1e9, "floor_ms": fl_ms,
                           "b1_over_floor": dict(zip(ENGINES, xs))}
            md.append(f"| {arch} | {f / 1e9:.2f} | {fl_ms:.1f} | "
                      + " / ".join(fmt(x, 2) for x in xs) + " |")
        md.append("")
    else:
        md.append("Compute floor: n/a (sgemm_peak did not run).")
        md.append("")

    notes = []
    for e in ENGINES:
        if e in modes:
            notes.append(f"{LABEL[e]} mode: {modes[e]}")
    for arch in models:
        par = []
        for x, y in (("onnxruntime", "pytorch"), ("kennel", "pytorch")):
            p = parity(cells, arch, x, y)
            if p is not None:
                par.append(f"{LABEL[x]} vs {LABEL[y]} {p:.1e}")
        if par:
            notes.append(f"{arch} logits max |diff| / max |logit| (same weights only): "
                         + ", ".join(par))
    for arch in models:
        fk, ft = flops[arch]["kennel_count"], flops[arch]["pytorch_count"]
        if fk and ft and abs(fk - ft) / ft > 0.01:
            notes.append(f"{arch}: kennel counts {fk / 1e9:.2f} GFLOP/image, "
                         f"PyTorch hooks {ft / 1e9:.2f}")
    notes += a.note
    if errors:
        notes.append(f"{len(errors)} run(s) failed: " + "; ".join(
            f"r{x['round']} {x['engine']} {x['arch']} b{x['batch']}: {x['error'][:160]}"
            for x in errors[:6]))
    if a.elapsed_s:
        notes.append(f"whole run took {a.elapsed_s / 60:.1f} min")
    if notes:
        md.append("Notes:")
        md += [f"- {n}" for n in notes]
    text = "\n".join(md) + "\n"

    out = {
        "date": date,
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "threads": a.threads,
        "rounds": rounds,
        "engines": engine_label,
        "modes": modes,
        "summary": summary,
        "ratios": ratios,
        "flops": flops,
        "sgemm": sgemm,
        "sgemm_peak_gflops": peak,
        "floor": floor,
        "notes": notes,
        "errors": errors,
        "runs": {f"{arch}/b{b}/{e}": [{k: v for k, v in r.items()} for r in rs]
                 for (arch, b, e), rs in sorted(cells.items())},
    }
    with open(os.path.join(a.results, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.results, "latest.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    sys.stdout.write(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
