#!/usr/bin/env python3
"""Generate bench/benches/github_routes.rs from bench/routes/github.txt.

    python3 bench/gen_routes.py            # from the workspace root (or anywhere)

The output holds:

* `#[proxy(name = "github")] mod github { ... }`: one `#[route(...)]` per line of the
  table, in table order (route `rNNNN` is line NNNN, 1-based; its index in
  `github::ROUTES` and in `Matched::Found` is NNNN - 1);
* `PATHS`: concrete requests (method, path), one per method of every route, with the
  parameters filled with realistic values;
* `PATH_ROUTES`: for each entry of `PATHS`, the index of the route it was made from.

Before writing, the table is checked against the DSL's rules (and matchit's), so a bad
table fails here with a line number rather than in a proc-macro error:

* methods are known and listed once; a path appears on one line only (merge methods);
* no two routes with overlapping methods have the same shape (parameters renamed);
* at one position under the same prefix, parameters have the same name;
* a catch-all is the last segment; a parameter is a whole segment;
* a parameter and a catch-all never share a position (matchit rejects that).

`--routes N` writes only the first N routes (no PATHS) to stdout, for the compile-cost
experiment (`bench/compile-cost/measure.sh`); `--matchit N` writes the first N routes as a
Rust array of (methods, pattern) for its hand-written twin.

Standard library only.
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "routes", "github.txt")
OUT = os.path.join(HERE, "benches", "github_routes.rs")

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@%]*$")

# Realistic values for each parameter name (GitHub's documentation examples where it has
# them). A value must never equal a static segment next to the parameter: the generator
# checks that every concrete path is matched by the route it was made from.
VALUES = {
    "owner": "octocat",
    "repo": "hello-world",
    "org": "github",
    "username": "octocat",
    "target_user": "defunkt",
    "assignee": "hubot",
    "thread_id": "4101391",
    "license": "mit",
    "key": "contributor_covenant",
    "name": "bug",
    "installation_id": "24013347",
    "delivery_id": "93676014012",
    "code": "5f1e3a9c0d2b",
    "app_slug": "octoapp",
    "client_id": "Iv1.8a61f9b3a7aba766",
    "plan_id": "1313",
    "account_id": "583231",
    "gist_id": "aa5a315d61ae9438b18d",
    "comment_id": "1347",
    "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
    "key_id": "3451",
    "gpg_key_id": "3",
    "ssh_signing_key_id": "2",
    "migration_id": "79",
    "repo_name": "hello-world",
    "invitation_id": "1296269",
    "repository_id": "1296270",
    "codespace_name": "monalisa-octocat-hello-world-g4wpq6h95q",
    "secret_name": "GH_TOKEN",
    "package_type": "container",
    "package_name": "hello-world-npm",
    "package_version_id": "45763",
    "subject_digest": "sha256:2bc9ed2a58bd0b0d4fdf4dd0dbfe8a1ec7b4ab8d",
    "hook_id": "12345678",
    "ruleset_id": "42",
    "rule_suite_id": "21",
    "custom_property_name": "environment",
    "pat_id": "25381",
    "pat_request_id": "25382",
    "runner_id": "23",
    "runner_group_id": "39",
    "team_slug": "justice-league",
    "team_id": "2403",
    "project_id": "1002604",
    "discussion_number": "42",
    "comment_number": "17",
    "column_id": "367",
    "card_id": "1478",
    "autolink_id": "13",
    "branch": "main",
    "git_ref": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
    "basehead": "main...octo-feature",
    "check_run_id": "4",
    "check_suite_id": "5",
    "file_sha": "3a0f86fb8db8eea7ccbb9a95f325ddbedfb25e15",
    "commit_sha": "7638417db6d59f3c431d3e1f261cc637155684cd",
    "tree_sha": "9fb037999f264ba9a7fc6274d15fa3ae2ab98312",
    "tag_sha": "940bd336248efae0f9ee5bc7b2d5c985887b16ac",
    "issue_number": "1347",
    "reaction_id": "1",
    "event_id": "6430295168",
    "milestone_number": "1",
    "pull_number": "1347",
    "review_id": "80",
    "tag": "v1.0.0",
    "release_id": "1",
    "asset_id": "1",
    "deployment_id": "42",
    "status_id": "1",
    "environment_name": "production",
    "branch_policy_id": "361471",
    "build_id": "5",
    "pages_deployment_id": "4fd754f7e594640989b406850d0bc8f06a121251",
    "artifact_id": "11",
    "archive_format": "zip",
    "cache_id": "505",
    "job_id": "399444496",
    "run_id": "30433642",
    "attempt_number": "1",
    "workflow_id": "ci.yml",
    "alert_number": "42",
    "analysis_id": "201",
    "sarif_id": "47177e22-5596-11eb-80a1-c1e54ef945c6",
    "ghsa_id": "GHSA-abcd-1234-efgh",
    "assignment_id": "12",
    "classroom_id": "1296269",
}

# Catch-alls: values with several segments.
CATCH_ALL_VALUES = {
    "path": "src/main/java/com/octocat/App.java",
    "dir": "docs/guides",
    "git_ref": "heads/feature/login-page",
    "branch": "release/v2.1",
}


class TableError(Exception):
    pass


def parse_segment(seg):
    """('static', text) | ('param', name) | ('catch_all', name)."""
    if seg.startswith("{") and seg.endswith("}"):
        inner = seg[1:-1]
        kind = "param"
        if inner.startswith("*"):
            kind, inner = "catch_all", inner[1:]
        if not IDENT.match(inner):
            raise TableError(f"invalid parameter name {inner!r}")
        return (kind, inner)
    if "{" in seg or "}" in seg:
        raise TableError(f"a parameter must be a whole segment: {seg!r}")
    if seg in (".", "..") or not PATH_CHARS.match(seg):
        raise TableError(f"invalid static segment {seg!r}")
    return ("static", seg)


def parse_table(path):
    routes = []  # (lineno, [methods], pattern, [segments])
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                parts = line.split()
                if len(parts) != 2:
                    raise TableError("expected `METHODS /path`")
                methods = parts[0].split("|")
                for m in methods:
                    if m not in METHODS:
                        raise TableError(f"unknown method {m!r}")
                if len(set(methods)) != len(methods):
                    raise TableError("a method is listed twice")
                pattern = parts[1]
                if not pattern.startswith("/"):
                    raise TableError("a pattern starts with `/`")
                raw_segs = pattern[1:].split("/")
                segs = []
                for i, s in enumerate(raw_segs):
                    if s == "" and i + 1 != len(raw_segs):
                        raise TableError("empty segment")
                    segs.append(parse_segment(s) if s else ("static", ""))
                for i, (kind, _) in enumerate(segs):
                    if kind == "catch_all" and i + 1 != len(segs):
                        raise TableError("a catch-all must be the last segment")
                names = [n for k, n in segs if k != "static"]
                if len(set(names)) != len(names):
                    raise TableError("a parameter appears twice")
            except TableError as e:
                raise TableError(f"{path}:{lineno}: {e}") from None
            routes.append((lineno, methods, pattern, segs))
    return routes


def shape(segs):
    return "/" + "/".join(
        {"static": t, "param": "{}", "catch_all": "{*}"}[k] if k != "static" else t
        for k, t in segs
    )


def check_rules(path, routes):
    errors = []
    by_pattern = {}
    by_shape = {}
    names = {}  # (prefix shape, kind) -> (name, lineno)
    positions = {}  # prefix shape -> set of kinds (param / catch_all)
    for lineno, methods, pattern, segs in routes:
        if pattern in by_pattern:
            errors.append(f"{path}:{lineno}: {pattern} repeats line {by_pattern[pattern]}: merge the methods")
        by_pattern.setdefault(pattern, lineno)
        sh = shape(segs)
        for other_line, other_methods in by_shape.get(sh, []):
            common = set(methods) & set(other_methods)
            if common:
                errors.append(
                    f"{path}:{lineno}: collides with line {other_line} "
                    f"(same shape {sh}, both accept {'|'.join(sorted(common))})"
                )
        by_shape.setdefault(sh, []).append((lineno, methods))
        prefix = ""
        for kind, text in segs:
            if kind == "static":
                prefix += "/" + text
                continue
            key = (prefix, kind)
            if key in names and names[key][0] != text:
                errors.append(
                    f"{path}:{lineno}: parameter `{text}` is at the same position as "
                    f"`{names[key][0]}` (line {names[key][1]}) under {prefix or '/'}"
                )
            names.setdefault(key, (text, lineno))
            positions.setdefault(prefix, {}).setdefault(kind, lineno)
            prefix += "/{*}" if kind == "catch_all" else "/{}"
    for prefix, kinds in positions.items():
        if len(kinds) > 1:
            errors.append(
                f"{path}:{kinds['catch_all']}: a catch-all and a parameter (line "
                f"{kinds['param']}) share a position under {prefix or '/'} (matchit rejects it)"
            )
    if errors:
        raise TableError("\n".join(errors))


def concrete(segs):
    out = []
    for kind, text in segs:
        if kind == "static":
            out.append(text)
        elif kind == "param":
            if text not in VALUES:
                raise TableError(f"no example value for parameter `{text}`: add it to VALUES")
            out.append(VALUES[text])
        else:
            out.append(CATCH_ALL_VALUES.get(text) or VALUES[text] + "/x")
    return "/" + "/".join(out)


def match_python(routes, path):
    """A reference matcher (static before parameter before catch-all, backtracking),
    ignoring methods: every route whose pattern matches, best first."""
    segs = path[1:].split("/")
    found = []

    def score(rsegs):
        if len(rsegs) > len(segs):
            return None
        key = []
        for i, (kind, text) in enumerate(rsegs):
            if kind == "catch_all":
                return key + [2]
            if kind == "static":
                if segs[i] != text:
                    return None
                key.append(0)
            else:
                if segs[i] == "":
                    return None
                key.append(1)
        return key if len(rsegs) == len(segs) else None

    for idx, (_, _, _, rsegs) in enumerate(routes):
        k = score(rsegs)
        if k is not None:
            found.append((k, idx))
    found.sort()
    return [i for _, i in found]


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def route_attr(methods, pattern):
    return f"#[route({' | '.join(methods)}, {rust_str(pattern)}, to = Api)]"


def proxy_module(routes, indent="    "):
    lines = [
        '#[proxy(name = "github")]',
        "pub mod github {",
        f'{indent}#[upstream(addrs = ["127.0.0.1:1"])]',
        f"{indent}pub struct Api;",
    ]
    for n, (_, methods, pattern, _) in enumerate(routes, 1):
        lines.append("")
        lines.append(f"{indent}{route_attr(methods, pattern)}")
        lines.append(f"{indent}fn r{n:04}() {{}}")
    lines.append("}")
    return lines


def tuple_line(a, b, indent="    ", width=100):
    # rustfmt's default `fn_call_width` (60) also limits one-line tuples.
    tup = f"({rust_str(a)}, {rust_str(b)})"
    if len(tup) - 2 <= 60 and len(indent) + len(tup) + 1 <= width:
        return [f"{indent}{tup},"]
    return [f"{indent}(", f"{indent}    {rust_str(a)},", f"{indent}    {rust_str(b)},", f"{indent}),"]


def generate(routes):
    paths = []
    for idx, (lineno, methods, _pattern, segs) in enumerate(routes):
        path = concrete(segs)
        best = match_python(routes, path)
        if not best or best[0] != idx:
            other = routes[best[0]] if best else None
            raise TableError(
                f"line {lineno}: the example path {path} is matched by "
                f"{other[2] if other else 'nothing'}, not by its own route: change VALUES"
            )
        for m in methods:
            paths.append((m, path, idx))
    out = [
        "//! GENERATED by `python3 bench/gen_routes.py` from `bench/routes/github.txt`: do not",
        "//! edit; change the table (or the script) and run the command again.",
        "//!",
        f"//! {len(routes)} routes of the GitHub REST API as a `#[proxy]` declaration, and",
        f"//! {len(paths)} concrete requests (one per method of every route).",
        "",
        "#![allow(dead_code)]",
        "",
        "use proxy_runtime::proxy;",
        "",
    ]
    out += proxy_module(routes)
    out += [
        "",
        "/// Concrete requests: (method, path), one per method of every route.",
        "pub const PATHS: &[(&str, &str)] = &[",
    ]
    for m, p, _ in paths:
        out += tuple_line(m, p)
    out += [
        "];",
        "",
        "/// For each entry of `PATHS`, the index (in `github::ROUTES`) of the route it was",
        "/// made from.",
        "#[rustfmt::skip]",
        "pub const PATH_ROUTES: &[usize] = &[",
    ]
    for m, p, idx in paths:
        out.append(f"    {idx}, // {m} {p}"[:100].rstrip())
    out += ["];", ""]
    return "\n".join(out), len(paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default=TABLE)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--routes", type=int, help="print only a #[proxy] module of the first N routes")
    ap.add_argument("--matchit", type=int, help="print the first N routes as a Rust array")
    args = ap.parse_args()
    try:
        routes = parse_table(args.table)
        check_rules(args.table, routes)
        if args.routes:
            print("\n".join(proxy_module(routes[: args.routes])))
            return
        if args.matchit:
            print("pub const ROUTES: &[(&str, &str)] = &[")
            for _, methods, pattern, _ in routes[: args.matchit]:
                print("\n".join(tuple_line("|".join(methods), pattern)))
            print("];")
            return
        text, npaths = generate(routes)
    except TableError as e:
        print(f"gen_routes.py: {e}", file=sys.stderr)
        sys.exit(1)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(routes)} routes, {npaths} paths")


if __name__ == "__main__":
    main()
