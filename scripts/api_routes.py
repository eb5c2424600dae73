#!/usr/bin/env python3
"""The operations of kennel's route table (src/api/api.c), read from the source.

    scripts/api_routes.py                 one line per route: service, operation,
                                          method and path (tab-separated)
    scripts/api_routes.py --markdown      the same as a Markdown table per service,
                                          a starting point when docs/API.md grows
    scripts/api_routes.py --check FILE    exit 1 naming every route FILE does not
                                          mention, and every operation FILE lists
                                          as implemented that has no route

A route is mentioned when its operation name appears in backquotes
(`CreateModel`); kennel's own routes (KN_PROTO_KENNEL) are mentioned by their
path in backquotes (`/kennel/health`, `GET /metrics`). An operation counts as
"listed as implemented" when it opens a table row: | `Name` |. The section
"## What kennel does not implement" is no mention, and an operation named
there in backquotes must have no route. Every member a handler in src/api/
refuses as unsupported (a `unsupported[] = {...}` list) must be named in
backquotes too.

The table is read textually: rows written with a service macro (SM(Op, fn),
AAS(...), IAM(...), LAMBDA(Op, "METHOD", "/path", fn)) or as a brace
initializer {KN_PROTO_X, "service", "Op", target, "METHOD", "/path", ...}.
"""
import os
import re
import sys

MACRO_SERVICE = {
    "SM": "sagemaker",
    "AAS": "application-autoscaling",
    "IAM": "iam",
    "STS": "sts",
    "LAMBDA": "lambda",
}


def table_text(src):
    start = src.index("routes[] = {")
    end = src.index("\n};", start)
    text = src[start + len("routes[] = {"):end]
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    # drop #define (with its continuation lines) and #undef
    out, cont = [], False
    for line in text.split("\n"):
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            continue
        out.append(line)
    return " ".join(out)


def routes(src):
    text = table_text(src)
    found = []
    pos = 0
    pat = re.compile(
        r"\{\s*(KN_PROTO_\w+)\s*,\s*(NULL|\"[^\"]*\")\s*,\s*\"(\w+)\"\s*,\s*(NULL|\"[^\"]*\")\s*,"
        r"\s*(NULL|\"[^\"]*\")\s*,\s*(NULL|\"[^\"]*\")"
        r"|\b([A-Z][A-Z0-9_]*)\(\s*(\w+)\s*,([^()]*?)\)\s*,")
    for m in pat.finditer(text, pos):
        if m.group(1):
            unq = lambda s: None if s == "NULL" else s.strip('"')
            proto = m.group(1)
            found.append({
                "kennel": proto == "KN_PROTO_KENNEL",
                "service": unq(m.group(2)) or ("kennel" if proto == "KN_PROTO_KENNEL" else "?"),
                "op": m.group(3),
                "method": unq(m.group(5)) or "",
                "path": unq(m.group(6)) or "",
            })
        else:
            macro, op, rest = m.group(7), m.group(8), m.group(9)
            strs = re.findall(r"\"([^\"]*)\"", rest)
            method = strs[0] if len(strs) >= 2 else ""
            path = strs[1] if len(strs) >= 2 else ""
            found.append({
                "kennel": False,
                "service": MACRO_SERVICE.get(macro, macro.lower()),
                "op": op,
                "method": method,
                "path": path,
            })
    return found


def mentioned(r, doc):
    if r["kennel"]:
        return re.search(r"`(?:[A-Z]+ )?" + re.escape(r["path"]) + r"`", doc) is not None
    return ("`" + r["op"] + "`") in doc


def main(argv):
    src_path = "src/api/api.c"
    args = argv[1:]
    if "--src" in args:
        i = args.index("--src")
        src_path = args[i + 1]
        del args[i:i + 2]
    with open(src_path, encoding="utf-8") as f:
        rs = routes(f.read())
    if not rs:
        print(f"{src_path}: no routes found (has the table's shape changed?)", file=sys.stderr)
        return 2
    if args and args[0] == "--check":
        with open(args[1], encoding="utf-8") as f:
            full = f.read()
        # the "does not implement" section must not count as a mention
        doc, missing = full, ""
        m = re.search(r"^## What kennel does not implement[^\n]*\n", full, flags=re.M)
        if m:
            nxt = re.search(r"^## ", full[m.end():], flags=re.M)
            stop = m.end() + nxt.start() if nxt else len(full)
            doc = full[:m.start()] + full[stop:]
            missing = full[m.end():stop]
        bad = 0
        # bullets "- **Service**: ..." name operations of that service
        services = {"SageMaker": ("sagemaker",), "SageMaker Runtime": ("sagemaker",),
                    "Application Auto Scaling": ("application-autoscaling",),
                    "IAM": ("iam",), "STS": ("sts",), "Lambda": ("lambda",)}
        for bullet in re.split(r"\n(?=- )", missing):
            m = re.match(r"- \*\*([^*]+)\*\*", bullet)
            svc = services.get(m.group(1).strip()) if m else None
            for name in sorted(set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", bullet))):
                if any(r["op"] == name and not r["kennel"] and
                       (svc is None or r["service"] in svc) for r in rs):
                    print(f"{args[1]}: lists {name} as not implemented but src/api/api.c "
                          f"has a route for it")
                    bad += 1
        for r in rs:
            if not mentioned(r, doc):
                what = f"{r['method']} {r['path']}" if r["kennel"] else r["op"]
                print(f"{args[1]}: does not mention {r['service']} route {what} "
                      f"(src/api/api.c has it)")
                bad += 1
        # members the handlers refuse (kn_val_unsupported lists) are named too
        api_dir = os.path.dirname(src_path)
        for fn in sorted(os.listdir(api_dir)):
            if not fn.endswith(".c"):
                continue
            with open(os.path.join(api_dir, fn), encoding="utf-8") as f:
                code = f.read()
            for lst in re.findall(r"unsupported\[\]\s*=\s*\{([^}]*)\}", code):
                for member in re.findall(r"\"([A-Za-z0-9]+)\"", lst):
                    if ("`" + member + "`") not in full:
                        print(f"{args[1]}: does not name {member}, which src/api/{fn} "
                              f"refuses as unsupported")
                        bad += 1
        ops = {r["op"] for r in rs if not r["kennel"]}
        for m in re.finditer(r"^\|\s*`([A-Z][A-Za-z0-9]+)`\s*\|", full, flags=re.M):
            if m.group(1) not in ops:
                line = full.count("\n", 0, m.start()) + 1
                print(f"{args[1]}:{line}: lists {m.group(1)} as implemented but "
                      f"src/api/api.c has no such route")
                bad += 1
        print(f"{len(rs)} routes, {bad} problems")
        return 1 if bad else 0
    if args and args[0] == "--markdown":
        by = {}
        for r in rs:
            by.setdefault(r["service"], []).append(r)
        for svc, items in by.items():
            print(f"\n### {svc}\n\n| operation | route |\n| --- | --- |")
            for r in items:
                route = f"`{r['method']} {r['path']}`" if r["path"] else "JSON 1.1 / Query"
                print(f"| `{r['op']}` | {route} |")
        return 0
    for r in rs:
        print(f"{r['service']}\t{r['op']}\t{r['method']}\t{r['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
