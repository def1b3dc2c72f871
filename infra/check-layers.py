#!/usr/bin/env python3
"""Checks that the modules of a Rust crate's source tree import each other without cycles.

Usage: check-layers.py [SRC_DIR]      (default: shared/src)
       check-layers.py --self-test    (proves the check fails on a cycle)

Every `crate::…` and `super::…` path in a module's code (test modules excluded) is an
edge to the deepest module it names. A module may use its own children and the items of
its ancestors; every other edge is lifted to the two siblings under the nearest common
parent (`http::handlers::login` -> `service::login` is the edge `http` -> `service` in
the crate root). Those sibling edges must form a DAG at every level. Prints each cycle
found and exits 1; prints the layer order and exits 0 otherwise.
"""

import contextlib
import io
import os
import re
import sys
import tempfile

PATH = re.compile(r"\b(crate|super)((?:::\s*[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_of(src, path):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def production_code(text):
    # Comments out, and the test module (always last, after `#[cfg(test)]`).
    text = re.sub(r"//[^\n]*", "", text)
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\b", text)
    return text[: cut.start()] if cut else text


def targets(module, text, modules):
    base = {"crate": (), "super": module[:-1]}
    paths = []
    for head, rest, group in USE_GROUP.findall(text):
        prefix = [p for p in rest.split("::") if p]
        for item in re.split(r"\s*,\s*", group):
            item = re.sub(r"\s+as\s+\w+|[{}\s]", "", item).split("::")
            paths.append(list(base[head]) + prefix + [p for p in item if p and p != "self"])
    for head, rest in PATH.findall(USE_GROUP.sub("", text)):
        paths.append(list(base[head]) + [p.strip() for p in rest.split("::") if p.strip()])
    for path in paths:
        # The deepest known module the path names.
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in modules:
                yield tuple(path[:n])
                break


def sibling_edges(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs") and name != "tests.rs":
                path = os.path.join(root, name)
                files[module_of(src, path)] = path
    modules = set(files)
    edges = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = production_code(f.read())
        for target in targets(module, text, modules):
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common == len(target) or common == len(module):
                continue  # an ancestor's item, or one of its own descendants
            parent = module[:common]
            edge = (module[common], target[common])
            edges.setdefault(parent, {}).setdefault(edge, set()).add("::".join(module) + " -> " + "::".join(target))
    return edges


def cycles(graph):
    nodes = sorted({n for edge in graph for n in edge})
    out = {n: sorted(b for (a, b) in graph if a == n) for n in nodes}
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in out[n]:
            if state.get(m) == "open":
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in nodes:
        if n not in state:
            visit(n)
    return found


def order(graph):
    nodes = sorted({n for edge in graph for n in edge})
    depth = {}

    def level(n):
        if n not in depth:
            depth[n] = 0
            depth[n] = 1 + max([level(b) for (a, b) in graph if a == n] or [-1])
        return depth[n]

    return sorted(nodes, key=lambda n: (-level(n), n))


def check(src):
    failed = False
    for parent, graph in sorted(sibling_edges(src).items()):
        name = "::".join(("crate",) + parent)
        for cycle in cycles(graph):
            failed = True
            print(f"cycle in {name}: {' -> '.join(cycle)}")
            for a, b in zip(cycle, cycle[1:]):
                for why in sorted(graph[(a, b)])[:3]:
                    print(f"    {why}")
        if not parent and not failed:
            print("layers of crate (each imports only those after it): " + ", ".join(order(graph)))
    return not failed


def self_test():
    with tempfile.TemporaryDirectory() as src:
        def write(name, text):
            os.makedirs(os.path.dirname(os.path.join(src, name)), exist_ok=True)
            with open(os.path.join(src, name), "w", encoding="utf-8") as f:
                f.write(text)

        write("lib.rs", "pub mod a;\npub mod b;\n")
        write("a/mod.rs", "pub mod x;\npub mod y;\nuse crate::b::B;\n")
        write("a/x.rs", "use super::y::Y;\n")
        write("a/y.rs", "pub struct Y;\n#[cfg(test)]\nmod tests { use super::super::x; }\n")
        write("b.rs", "pub struct B;\n")
        def passes():
            with contextlib.redirect_stdout(io.StringIO()):
                return check(src)

        assert passes(), "an acyclic tree must pass"
        write("b.rs", "pub struct B;\nfn f() -> crate::a::x::X { todo() }\n")
        assert not passes(), "a -> b -> a must fail"
        write("b.rs", "pub struct B;\n")
        write("a/y.rs", "use super::{x::X, Y2};\n")
        assert not passes(), "a::x -> a::y -> a::x must fail"
    print("self-test: cycles are detected")
    return True


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    sys.exit(0 if check(sys.argv[1] if len(sys.argv) > 1 else "shared/src") else 1)
