"""Execute notebooks in place so their outputs show in the docs. Cells flagged `#| cuda` or `#| slow` are skipped unless --all.

Figures wider than MAX_WIDTH px are scaled down, and large ones stored with 64 colours (the docs show them at page width;
the notebooks stay light). Cells that only call `show_doc` keep no output: nbdev renders them when it builds the docs.
`python tools/nbrun.py --shrink-only nbs/*.ipynb` only does that to the notebooks as they are."""
import argparse, base64, io, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

_flag = re.compile(r"^#\|\s*(cuda|slow|eval:\s*false)\b", re.M)

MAX_WIDTH = 720

def shrink_pngs(nb, max_width:int=MAX_WIDTH)->int:
    "Scale every PNG output wider than `max_width` down to it (aspect kept); returns how many were scaled."
    from PIL import Image
    n = 0
    for cell in nb.cells:
        for out in cell.get('outputs', []):
            data = out.get('data', {})
            if 'image/png' not in data: continue
            raw = base64.b64decode(data['image/png']); im = Image.open(io.BytesIO(raw))
            if im.width <= max_width and len(raw) <= 20_000: continue
            if im.width > max_width: im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
            im = im.convert("RGB").quantize(64)       # a plot needs no more than 64 colours
            buf = io.BytesIO(); im.save(buf, format='PNG', optimize=True)
            if len(buf.getvalue()) >= len(raw): continue
            data['image/png'] = base64.b64encode(buf.getvalue()).decode(); n += 1
    return n

def drop_showdoc_outputs(nb)->int:
    "Clear the outputs of cells that only call `show_doc` (nbdev renders those when it builds the docs); how many were cleared."
    n = 0
    for cell in nb.cells:
        lines = cell.source.strip().splitlines() if cell.cell_type == 'code' else []
        if lines and all(l.startswith('show_doc(') for l in lines) and cell.get('outputs'):
            cell['outputs'] = []; cell['execution_count'] = None; n += 1
    return n

def run_nb(path:Path, all_cells:bool=False):
    nb = read_nb(path)
    sh = CaptureShell(path=path.parent.resolve())
    sh._fname = str(path)
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        if not all_cells and _flag.search(cell.source): continue
        sh.cell(cell)
        if sh.exc: raise RuntimeError(f"{path}: cell failed:\n{cell.source}\n{sh.prettytb()}") from None
    shrink_pngs(nb); drop_showdoc_outputs(nb)
    write_nb(nb, path)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('notebooks', nargs='+'); ap.add_argument('--all', action='store_true')
    ap.add_argument('--shrink-only', action='store_true', help='only scale down the figures already in the notebooks')
    a = ap.parse_args()
    for p in a.notebooks:
        if a.shrink_only:
            nb = read_nb(p); n, m = shrink_pngs(nb), drop_showdoc_outputs(nb)
            if n or m: write_nb(nb, p); print(f'{p}: {n} figures scaled, {m} show_doc outputs cleared')
        else: run_nb(Path(p), a.all); print('ran', p)
