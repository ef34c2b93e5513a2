#!/usr/bin/env python3
"""The `rust-version` of Cargo.toml (and of every workspace member) is the true minimum: the
newest `rust-version` among the locked dependencies built on Linux. A dependency update that
needs a newer Rust fails here until Cargo.toml says so; a stale, too-high value fails too."""

import json
import subprocess
import sys


def version(text):
    return tuple(int(x) for x in text.split("."))[:2]


def main():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked",
         "--filter-platform", "x86_64-unknown-linux-gnu"],
        check=True, capture_output=True, text=True).stdout
    meta = json.loads(out)
    in_graph = {n["id"] for n in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    deps = [(version(p["rust_version"]), p["name"], p["version"]) for p in meta["packages"]
            if p.get("rust_version") and p["id"] in in_graph and p["id"] not in members]
    need, name, ver = max(deps)
    print(f"  the locked dependencies need Rust {need[0]}.{need[1]} ({name} {ver})")
    failed = False
    for p in meta["packages"]:
        if p["id"] not in members:
            continue
        declared = p.get("rust_version")
        if declared is None or version(declared) != need:
            print(f"  FAIL: {p['name']} declares rust-version {declared}, want {need[0]}.{need[1]}")
            failed = True
        else:
            print(f"  ok    {p['name']}: rust-version {declared}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
