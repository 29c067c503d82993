"Which exported names of each notebook's module have no show_doc cell: python tools/showdoc_check.py"
import json, re, importlib, inspect, sys
from pathlib import Path

def missing(nb_path):
    cells = json.loads(Path(nb_path).read_text())["cells"]
    src = ["".join(c["source"]) for c in cells]
    m = next((re.search(r"#\| default_exp (\S+)", s) for s in src if "#| default_exp" in s), None)
    if not m: return None, []
    mod = importlib.import_module(f"dual_vision_nb.{m.group(1)}")
    shown = set(re.findall(r"show_doc\(([\w.]+)", "\n".join(src)))
    return mod.__name__, [n for n in getattr(mod, "__all__", []) if n not in shown
                          and (inspect.isfunction(getattr(mod, n)) or inspect.isclass(getattr(mod, n)))]

if __name__ == "__main__":
    bad = 0
    for p in sorted(Path("nbs").glob("*.ipynb")):
        name, miss = missing(p)
        if miss: bad += 1; print(f"{p.name}: {', '.join(miss)}")
    sys.exit(1 if bad else 0)
