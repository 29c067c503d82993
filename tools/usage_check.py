"Exported names no test cell of their chapter mentions by name (indirect use does not count): python tools/usage_check.py"
import json, re, importlib, inspect
from pathlib import Path
tests = "\n".join(p.read_text() for p in Path("tests").glob("*.py"))
tot = 0
for p in sorted(Path("nbs").glob("*.ipynb")):
    cells = json.loads(p.read_text())["cells"]
    src = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    m = next((re.search(r"#\| default_exp (\S+)", s) for s in src if "#| default_exp" in s), None)
    if not m: continue
    mod = importlib.import_module(f"dual_vision_nb.{m.group(1)}")
    used = "\n".join(s for s in src if not s.startswith("#| export") and not s.startswith("show_doc("))
    miss = [n for n in getattr(mod, "__all__", []) if not re.search(rf"\b{n}\b", used)]
    if miss: tot += len(miss); print(p.name, miss, "| in tests/:", [n for n in miss if re.search(rf"\b{n}\b", tests)])
print(tot)
