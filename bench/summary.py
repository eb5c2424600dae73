#!/usr/bin/env python3
"""bench/summary.py: one table of kennel's numbers from the outputs of every bench.

Reads what bench/all.sh left in a results directory (default bench/results):

  engine.log + latest.json      bench/run.sh            inference vs ONNX Runtime / PyTorch
  training.log + train_latest.jsonl  bench/train_run.sh training vs PyTorch
  tuning.log                    bench/tune_bench.sh     tuning job vs PyTorch (hpo.py logic)
  router.log                    bench/router_bench.sh   invoke through the daemon vs direct
  functions.log                 bench/fn_bench.sh       cold start, warm overhead, invokes/s
  auth.log                      build/bench/auth_bench  authorization cost per request
  memory.log                    bench/weights_share.sh  1 vs 3 instances, PSS
  serve.log                     bench/serve_bench.sh    model server under wrk (no target)

and writes summary.json (per-area rows, each area with its own date, commit,
load average and knobs, so that a partial run --only router keeps the other
areas' rows from earlier runs), summary.md (one table) and the block between
<!-- bench:begin --> and <!-- bench:end --> in README.md.

  bench/summary.py [--results DIR] [--readme FILE|--no-readme]
                   [--ran AREA=RC ...] [--load-start L] [--load-end L]

--ran names the areas this run executed and each one's exit status; with no
--ran, every area whose log exists is read. Areas not named keep their rows
from summary.json. Exit status 0, or 2 when an area named by --ran has a log
that yields no figures.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys

AREAS = ["engine", "training", "tuning", "router", "functions", "auth", "memory", "serve"]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# Environment knobs of each bench; a run with any of them set is not a full run.
KNOBS = {
    "engine": ["ROUNDS", "MODELS", "BATCHES", "THREADS", "ENGINES", "KN_BACKEND", "KN_WEIGHTS",
               "TORCH_MODE"],
    "training": ["ROUNDS", "HEAD_EPOCHS", "STEPS", "CASES"],
    "tuning": ["TRIALS", "REPS", "EPOCHS"],
    "router": ["ROUNDS", "DURATION", "CONNS", "BIG_CONNS", "WRK_THREADS", "INSTANCE_TYPE",
               "SKIP_RESNET"],
    "functions": ["FN_ARGS"],
    "auth": ["AUTH_ITERS"],
    "memory": ["ARCH", "INSTANCE_TYPE"],
    "serve": ["DURATION", "CONNS", "THREADS", "MAX_BATCH", "MAX_WAIT_US", "WRK_THREADS"],
}


class ParseError(Exception):
    pass


def row(measurement, kennel, reference="-", ratio=None, target="-", met=None):
    """One table row. ratio: a float (shown as 1.23x) or None; met: True/False/None."""
    return {"measurement": measurement, "kennel": kennel, "reference": reference,
            "ratio": None if ratio is None else round(ratio, 3), "target": target, "met": met}


def fnum(x, digits=2):
    return f"{x:,.{digits}f}"


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def md_table(text, header_start):
    """Rows (lists of cells) of the markdown table whose header starts with header_start."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            rows = []
            for l in lines[i + 2:]:
                if not l.startswith("|"):
                    break
                rows.append([c.strip() for c in l.strip().strip("|").split("|")])
            return rows
    return []


def num(cell):
    return float(cell.replace(",", "").rstrip("%"))


# ---- engine: bench/run.sh -> latest.json ----
def parse_engine(log, results):
    path = os.path.join(results, "latest.json")
    if not os.path.exists(path):
        raise ParseError("latest.json absent")
    d = json.load(open(path))
    s = d.get("summary", {})
    eng = d.get("engines", {})
    rows = []
    for model in ("resnet50", "mobilenet_v2"):
        for ref, label in (("onnxruntime", "ORT"), ("pytorch", "PyTorch")):
            k, r = s.get(f"{model}/b1/kennel"), s.get(f"{model}/b1/{ref}")
            if k and r and k.get("median_ms") and r.get("median_ms"):
                ratio = k["median_ms"] / r["median_ms"]
                tgt = model == "resnet50" and ref == "onnxruntime"
                rows.append(row(f"{model} batch-1 latency (median)", f"{k['median_ms']:.2f} ms",
                                f"{label} {r['median_ms']:.2f} ms", ratio,
                                "<= 1.05x ORT" if tgt else "-", (ratio <= 1.05) if tgt else None))
            k, r = s.get(f"{model}/b32/kennel"), s.get(f"{model}/b32/{ref}")
            if k and r and k.get("images_per_s") and r.get("images_per_s"):
                ratio = k["images_per_s"] / r["images_per_s"]
                tgt = model == "resnet50" and ref == "onnxruntime"
                rows.append(row(f"{model} batch-32 throughput", f"{k['images_per_s']:.1f} img/s",
                                f"{label} {r['images_per_s']:.1f} img/s", ratio,
                                ">= 1.0x ORT" if tgt else "-", (ratio >= 1.0) if tgt else None))
    if not rows:
        raise ParseError("latest.json has no kennel/reference pair")
    # the settings as run.sh recorded them (not the caller's environment)
    knobs = {}
    if d.get("rounds") not in (None, 3):
        knobs["ROUNDS"] = str(d["rounds"])
    models = sorted({k.split("/")[0] for k in s})
    if models != ["mobilenet_v2", "resnet50"]:
        knobs["MODELS"] = " ".join(models)
    batches = sorted({int(k.split("/")[1][1:]) for k in s})
    if batches != [1, 8, 32]:
        knobs["BATCHES"] = " ".join(map(str, batches))
    extra = {"bench_date": d.get("date"), "engines": ", ".join(v for v in eng.values() if v),
             "knobs": knobs}
    return rows, extra


# ---- training: bench/train_run.sh -> train_latest.jsonl ----
TRAIN_CASES = [("features", "resnet50 frozen feature extraction, batch 32", "img_per_s", 1.1),
               ("head", "head epoch, 6680 x 2048-d, batch 32, Adam", "seconds", 3.0),
               ("finetune1", "resnet50 --finetune 1 step, batch 16", "img_per_s", 1.1),
               ("full", "resnet50 full fine-tune step, batch 16", "img_per_s", 1.1)]


def parse_training(log, results):
    path = os.path.join(results, "train_latest.jsonl")
    if not os.path.exists(path):
        raise ParseError("train_latest.jsonl absent")
    recs = json_lines(open(path).read())
    rows = []
    for case, title, key, target in TRAIN_CASES:
        k = [r[key] for r in recs if r.get("case") == case and r.get("engine") == "kennel" and key in r]
        p = [r[key] for r in recs if r.get("case") == case and r.get("engine") == "pytorch" and key in r]
        if not k or not p:
            continue
        km, pm = statistics.median(k), statistics.median(p)
        if key == "seconds":
            ratio = pm / km
            rows.append(row(title, f"{km:.4f} s", f"PyTorch {pm:.4f} s", ratio,
                            f">= {target}x PyTorch", ratio >= target))
        else:
            ratio = km / pm
            rows.append(row(title, f"{km:.2f} img/s", f"PyTorch {pm:.2f} img/s", ratio,
                            f">= {target}x PyTorch", ratio >= target))
    if not rows:
        raise ParseError("train_latest.jsonl has no case run by both engines")
    # rounds and cases as train_run.sh ran them; the other knobs only from the environment
    knobs = {k: os.environ[k] for k in ("HEAD_EPOCHS", "STEPS") if os.environ.get(k)}
    rounds = max(int(r.get("round", 1)) for r in recs)
    if rounds != 3:
        knobs["ROUNDS"] = str(rounds)
    cases = [c[0] for c in TRAIN_CASES if any(r.get("case") == c[0] for r in recs)]
    if len(cases) != len(TRAIN_CASES):
        knobs["CASES"] = " ".join(cases)
    return rows, {"knobs": knobs}


# ---- tuning: bench/tune_bench.sh stdout ----
TUNE_HEAD = re.compile(r"^== (\d+) trials, (\d+) epochs")
TUNE_LINE = re.compile(r"^\s+(kennel, feature cache on|kennel, feature cache off|PyTorch hpo\.py logic"
                       r" \(same trials\))\s+([0-9.]+|nan) s\s+best Test Loss (?:per run [^,]*, median )?(\S+)")


def parse_tuning(log, results):
    blocks, cur = [], None
    for line in log.splitlines():
        m = TUNE_HEAD.match(line)
        if m:
            cur = {"trials": int(m.group(1)), "epochs": int(m.group(2))}
            blocks.append(cur)
            continue
        m = TUNE_LINE.match(line)
        if m and cur is not None:
            key = {"kennel, feature cache on": "on", "kennel, feature cache off": "off"}.get(m.group(1), "pt")
            cur[key] = (float(m.group(2)), m.group(3))
    rows = []
    for b in blocks:
        if not all(k in b for k in ("on", "off", "pt")):
            continue
        n = b["trials"]
        (on, lon), (off, loff), (pt, lpt) = b["on"], b["off"], b["pt"]
        ratio = pt / on if on else None
        target, met = "-", None
        if n >= 20:
            # "equal": both engines train from the same initial head and
            # batch order, so their losses differ only by float arithmetic;
            # 0.1 % of the loss is far above that and far below a trial's spread
            target = ">= 10x PyTorch at equal (within 0.1 %) or better test loss"
            try:
                met = ratio is not None and ratio >= 10 and float(lon) <= float(lpt) * 1.001
            except ValueError:
                met = False
        rows.append(row(f"tuning job, {n} trials, {b['epochs']} epochs (best Test Loss)",
                        f"{on:.1f} s ({lon})", f"PyTorch {pt:.1f} s ({lpt})", ratio, target, met))
        if off:
            rows.append(row(f"tuning job, {n} trials: feature cache on vs off", f"{on:.1f} s",
                            f"cache off {off:.1f} s", off / on if on else None))
    if not rows:
        raise ParseError("no complete '== N trials' block")
    return rows, {}


# ---- router: bench/router_bench.sh stdout ----
ADDED = re.compile(r"^- (daemon, signed \(SigV4 \+ IAM \+ audit\)|daemon, --insecure-no-auth \(router only\)):"
                   r" added p50 at 1 connection ([0-9.-]+) ms .*?; ([0-9]+) req/s at (\d+) connections")


def parse_router(log, results):
    t = md_table(log, "| path | p50 ms (1 conn)")
    cells = {r[0]: r for r in t}
    direct = cells.get("direct to the instance")
    rows = []
    added = {m.group(1): m for m in (ADDED.match(l) for l in log.splitlines()) if m}
    for label, short in (("daemon, --insecure-no-auth (router only)", "router only, --insecure-no-auth"),
                         ("daemon, signed (SigV4 + IAM + audit)", "daemon as deployed, signed")):
        r = cells.get(label)
        if not r or not direct:
            continue
        m = added.get(label)
        if m:
            a = float(m.group(2))
            rows.append(row(f"tiny model, added p50 at 1 connection ({short})", f"{a:.3f} ms",
                            f"direct {num(direct[1]):.3f} ms p50", None, "< 0.3 ms", a < 0.3))
        rps, drps = num(r[4]), num(direct[4])
        conns = m.group(4) if m else "N"
        rows.append(row(f"tiny model, req/s at {conns} connections ({short})", f"{rps:,.0f} req/s",
                        f"direct {drps:,.0f} req/s", rps / drps if drps else None, ">= 10,000 req/s",
                        rps >= 10000))
    big = md_table(log, "| instances | path | req/s")
    bc = {(r[0], r[1]): r for r in big}
    if ("1", "routed") in bc and ("1", "direct") in bc:
        r, d = num(bc[("1", "routed")][2]), num(bc[("1", "direct")][2])
        rows.append(row("resnet50 at saturation, 1 instance, routed", f"{r:.1f} req/s",
                        f"direct {d:.1f} req/s", r / d if d else None))
    if ("3", "routed") in bc and ("1", "routed") in bc:
        r3, r1 = num(bc[("3", "routed")][2]), num(bc[("1", "routed")][2])
        rows.append(row("resnet50 at saturation, 3 instances, routed", f"{r3:.1f} req/s",
                        f"1 instance {r1:.1f} req/s", r3 / r1 if r1 else None))
    if not rows:
        raise ParseError("no router table")
    return rows, {}


# ---- functions: bench/fn_bench.sh JSON lines ----
def parse_functions(log, results):
    parts = {r.get("part"): r for r in json_lines(log)}
    rows = []
    c = parts.get("cold")
    if c:
        rows.append(row("cold start p50, create -> first response (C runtime)", f"{c['p50_ms']:.1f} ms",
                        "-", None, "< 10 ms", c["p50_ms"] < 10))
    w = parts.get("warm")
    if w:
        ov = w["overhead_p50_us"]
        rows.append(row("warm invoke overhead p50 (empty handler)", f"{ov:.0f} µs",
                        f"direct call {w['direct_p50_us']:.2f} µs", None, "< 0.3 ms", ov < 300))
        rows.append(row("warm invoke overhead p99", f"{w['overhead_p99_us']:.0f} µs", "-", None,
                        "< 0.3 ms", w["overhead_p99_us"] < 300))
    ld = parts.get("load")
    if ld:
        rows.append(row(f"warm invokes/s, {ld['threads']} threads", f"{ld['per_s']:,.0f} /s", "-", None,
                        ">= 5,000 /s", ld["per_s"] >= 5000))
    if not rows:
        raise ParseError("no fn_bench JSON line")
    return rows, {}


# ---- auth: build/bench/auth_bench JSON lines ----
def parse_auth(log, results):
    rows = []
    for r in json_lines(log):
        if r.get("bench") not in ("auth", "auth_front_door"):
            continue
        what = "SigV4 + policy evaluation" if r["bench"] == "auth" else "whole front door (kn_api__authorize)"
        tgt = r.get("target_p50_us", 20)
        rows.append(row(f"{what}, {r['statements']} statements, p50 (p99)",
                        f"{r['p50_us']:.1f} µs ({r['p99_us']:.0f})", "-", None, f"< {tgt:g} µs p50",
                        r["p50_us"] < tgt))
    if not rows:
        raise ParseError("no auth_bench JSON line")
    return rows, {}


# ---- memory: bench/weights_share.sh stdout ----
def parse_memory(log, results):
    t = md_table(log, "| instances | weights | sum RSS MiB")
    v = {}
    for r in t:
        kind = "shared" if r[1].startswith("shared") else "private"
        v[(kind, r[0])] = {"rss": num(r[2]), "pss": num(r[3]), "wpss": num(r[4])}
    need = [("shared", "1"), ("shared", "3"), ("private", "1"), ("private", "3")]
    if not all(k in v for k in need):
        raise ParseError("no complete weights_share table")
    s1, s3, p3 = v[("shared", "1")], v[("shared", "3")], v[("private", "3")]
    ratio = s3["pss"] / p3["pss"]
    wr = s3["wpss"] / s1["wpss"] if s1["wpss"] else None
    rows = [row("3 instances, sum of PSS (one shared weights file)", f"{s3['pss']:.0f} MiB",
                f"private copies {p3['pss']:.0f} MiB", ratio),
            row("3 instances, PSS of the weights mapping vs 1 instance", f"{s3['wpss']:.1f} MiB",
                f"1 instance {s1['wpss']:.1f} MiB", wr, "about one copy (<= 1.1x)",
                None if wr is None else wr <= 1.1)]
    return rows, {}


# ---- serve: bench/serve_bench.sh stdout ----
def parse_serve(log, results):
    t = md_table(log, "| request | connections | req/s")
    rows = []
    for r in t:
        if r[0] == "POST /invocations":
            rows.append(row(f"model server, POST /invocations, {r[1]} connection(s), p50 {r[3]} µs",
                            f"{num(r[2]):,.0f} req/s"))
        elif r[0] == "GET /ping":
            rows.append(row(f"model server, GET /ping (HTTP floor), {r[1]} connections",
                            f"{num(r[2]):,.0f} req/s"))
    if not rows:
        raise ParseError("no serve_bench table")
    return rows, {}


PARSERS = {"engine": parse_engine, "training": parse_training, "tuning": parse_tuning,
           "router": parse_router, "functions": parse_functions, "auth": parse_auth,
           "memory": parse_memory, "serve": parse_serve}


def git_commit(root):
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def cell(x):
    return str(x).replace("|", "\\|")


def render(summary):
    areas = summary.get("areas", {})
    out = ["| area | measurement | kennel | reference | ratio | target | met | measured |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for a in AREAS:
        e = areas.get(a)
        if not e:
            out.append(f"| {a} | not run yet | - | - | - | - | - | - |")
            continue
        when = f"{e['date']} ({e['commit']})"
        if e.get("knobs"):
            when += "*"
        for r in e.get("rows", []):
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            met = {True: "met", False: "missed", None: "-"}[r["met"]]
            out.append("| " + " | ".join(cell(c) for c in (a, r["measurement"], r["kennel"], r["reference"],
                                                          ratio, r["target"], met, when)) + " |")
        if e.get("status") != "ok":
            out.append(f"| {a} | {cell(e['status'])} | - | - | - | - | - | {when} |")
        bits = [f"load average {e.get('load_start', '?')} -> {e.get('load_end', '?')}"]
        if e.get("knobs"):
            bits.append("reduced settings " + " ".join(f"{k}={v}" for k, v in sorted(e["knobs"].items())))
        if e.get("stale_rows_from"):
            bits.append(f"rows from the run of {e['stale_rows_from']}")
        notes.append(f"- {a}: " + "; ".join(bits))
    # a full run: every area measured with its default settings (or skipped by its bench)
    full = all(a in areas and ((areas[a].get("rows") and not areas[a].get("knobs"))
                               or areas[a].get("status", "").startswith("skipped")) for a in AREAS)
    head = ("kennel and its reference measured side by side in the same run of each bench, on this "
            "machine. Ratio: kennel / reference for latency (below 1 = kennel faster) and for "
            "throughput (above 1 = kennel faster); reference seconds / kennel seconds for the head "
            "epoch and the tuning job (above 1 = kennel faster). * = reduced settings (a smoke run, "
            "not a measurement).")
    return "\n".join(out), notes, head, full


def write_outputs(summary, results, readme):
    table, notes, head, full = render(summary)
    md = ["# kennel bench summary", "",
          f"Written {summary['written']} by bench/summary.py at commit {summary['commit']}; last run: "
          f"{summary['last_run']}; load average at its start {summary['load_start']}, at its end "
          f"{summary['load_end']}.", "",
          head, "", table, "", "Per area (its own run):", ""] + notes + [""]
    open(os.path.join(results, "summary.md"), "w").write("\n".join(md))
    if readme:
        text = open(readme).read()
        i, j = text.find(BEGIN), text.find(END)
        if i < 0 or j < i:
            raise SystemExit(f"summary.py: {readme}: no {BEGIN} ... {END} block")
        if not full:
            block = ("No full run of `bench/all.sh` is recorded yet: the table appears here after one "
                     "(every bench with its default settings).")
        else:
            block = "\n".join([f"Generated by `bench/all.sh` ({summary['written']}). {head}", "",
                               table, "", "Per area (its own run):", ""] + notes)
        text = text[:i + len(BEGIN)] + "\n" + block.rstrip() + "\n" + text[j:]
        open(readme, "w").write(text)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description="one numbers table from bench/all.sh's outputs")
    ap.add_argument("--results", default=os.path.join(here, "results"))
    ap.add_argument("--readme", default=os.path.join(root, "README.md"))
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--ran", action="append", default=[], metavar="AREA=RC")
    ap.add_argument("--load-start", default=None)
    ap.add_argument("--load-end", default=None)
    ap.add_argument("--commit", default=None)
    ap.add_argument("--date", default=None)
    args = ap.parse_args(argv)

    ran = {}
    for item in args.ran:
        a, _, rc = item.partition("=")
        if a not in PARSERS or not rc.lstrip("-").isdigit():
            ap.error(f"--ran {item}: expected AREA=RC with AREA one of {', '.join(AREAS)}")
        ran[a] = int(rc)
    if not ran:
        ran = {a: 0 for a in AREAS if os.path.exists(os.path.join(args.results, f"{a}.log"))}

    spath = os.path.join(args.results, "summary.json")
    try:
        summary = json.load(open(spath))
    except (OSError, json.JSONDecodeError):
        summary = {}
    summary.setdefault("areas", {})
    date = args.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = args.commit or git_commit(root)
    load_start = args.load_start or loadavg()
    load_end = args.load_end or loadavg()
    bad = 0
    for a, rc in ran.items():
        logp = os.path.join(args.results, f"{a}.log")
        log = open(logp, errors="replace").read() if os.path.exists(logp) else ""
        ls, le = load_start, load_end
        loadp = os.path.join(args.results, f"{a}.load")  # bench/all.sh: load before and after the step
        if os.path.exists(loadp):
            lines = open(loadp).read().splitlines() + ["?", "?"]
            ls, le = lines[0] or "?", lines[1] or "?"
        entry = {"date": date, "commit": commit, "load_start": ls, "load_end": le,
                 "rc": rc, "knobs": {k: os.environ[k] for k in KNOBS[a] if os.environ.get(k)}}
        try:
            rows, extra = PARSERS[a](log, args.results)
            entry.update(rows=rows, status="ok" if rc == 0 else f"exit status {rc} (see {a}.log)", **extra)
        except (ParseError, KeyError, ValueError, IndexError, TypeError) as e:
            prev = summary["areas"].get(a)
            why = "skipped" if rc == 77 else f"failed (exit status {rc})" if rc else "no figures"
            print(f"summary.py: {a}: {why}: {logp}: {e}", file=sys.stderr)
            bad += rc != 77
            entry.update(status=f"{why} on {date}, see {a}.log", rows=[])
            if prev and prev.get("rows"):
                # keep the last good figures, marked with their own date
                entry.update(rows=prev["rows"], stale_rows_from=f"{prev['date']} ({prev['commit']})")
                for k in ("date", "commit", "load_start", "load_end", "knobs"):
                    entry[k] = prev.get(k, entry[k])
        summary["areas"][a] = entry
    summary.update(written=date, commit=commit, load_start=load_start, load_end=load_end)
    summary["last_run"] = ", ".join(f"{a} (exit {rc})" for a, rc in ran.items()) or "nothing"
    os.makedirs(args.results, exist_ok=True)
    with open(spath, "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")
    write_outputs(summary, args.results, None if args.no_readme else args.readme)
    print(open(os.path.join(args.results, "summary.md")).read())
    return 2 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
