"Execute notebooks in place so their outputs show in the docs. Cells flagged `#| cuda` or `#| slow` are skipped unless --all."
import argparse, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

_flag = re.compile(r"^#\|\s*(cuda|slow|eval:\s*false)\b", re.M)

def run_nb(path:Path, all_cells:bool=False):
    nb = read_nb(path)
    sh = CaptureShell(path=path.parent.resolve())
    sh._fname = str(path)
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        if not all_cells and _flag.search(cell.source): continue
        sh.cell(cell)
        if sh.exc: raise RuntimeError(f"{path}: cell failed:\n{cell.source}\n{sh.prettytb()}") from None
    write_nb(nb, path)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('notebooks', nargs='+'); ap.add_argument('--all', action='store_true')
    a = ap.parse_args()
    for p in a.notebooks: run_nb(Path(p), a.all); print('ran', p)
