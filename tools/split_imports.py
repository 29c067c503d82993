"""Move the imports of cells that mix imports and other code into their own cell just before: python tools/split_imports.py nbs/*.ipynb

nbdev's docs step (`nbdev_proc_nbs`, run by `nbdev_docs`) executes every cell holding an import, alone, without the
cells before it: a cell that imports and then uses a name made earlier fails there ("Found cells containing imports and
other code"). After the split the import cell runs in the docs, the code cell does not; in Jupyter and in tests the
order is unchanged. Directive lines (`#| hide`...) go with both parts. Imports nested in a block are not moved: they
are listed, to be fixed by hand. `--check` only lists the cells that would change (exit status 1 if any)."""
import argparse, ast, re, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from nbedit import NB

_export = re.compile(r"^#\|\s*(export|exports|exporti)\b", re.M)
_directive = re.compile(r"^#\|")


def split_cell(src:str):
    "(imports, rest) of a mixed cell, or None if the cell needs no split; raises ValueError when it cannot be split by lines."
    lines = src.splitlines()
    code = "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in lines)
    tree = ast.parse(code)
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    others = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    nested = [x for n in others for x in ast.walk(n) if isinstance(x, (ast.Import, ast.ImportFrom))]
    if nested: raise ValueError(f"an import inside a block (line {nested[0].lineno})")
    if not top or not others: return None
    taken = set()
    for n in top:
        span = set(range(n.lineno, n.end_lineno + 1))
        if any(o.lineno <= l <= o.end_lineno for o in others for l in span): raise ValueError(f"line {n.lineno} holds an import and other code")
        taken |= span
    directives = [l for l in lines if _directive.match(l)]
    imports = [l for i, l in enumerate(lines, 1) if i in taken]
    rest = [l for i, l in enumerate(lines, 1) if i not in taken]
    while rest and not rest[0].strip(): rest.pop(0)
    return "\n".join(directives + imports), "\n".join(rest)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="+"); ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    found = 0
    for p in a.notebooks:
        nb, changed = NB(p), False
        k = 0
        while k < len(nb.cells):
            c = nb.cells[k]
            src = "".join(c["source"])
            if c["cell_type"] != "code" or _export.search(src): k += 1; continue
            try: parts = split_cell(src)
            except SyntaxError: parts = None
            except ValueError as e: print(f"{p} cell {k}: {e}: fix by hand"); found += 1; k += 1; continue
            if parts is None: k += 1; continue
            found += 1
            if a.check: print(f"{p} cell {k}: imports and other code"); k += 1; continue
            imports, rest = parts
            c["source"] = rest                       # the code keeps its outputs; the import cell has none
            nb.cells.insert(k, NB.make("code", imports))
            changed, k = True, k + 2
        if changed: nb.save(); print(f"{p}: split")
    if a.check and found: sys.exit(1)


if __name__ == "__main__":
    main()
