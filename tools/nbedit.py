"""Edit notebooks cell by cell from a script: find a cell by id or by text, replace its source, insert cells.

    from nbedit import NB
    nb = NB("nbs/04b_trainer.ipynb")
    nb.find("def dvn_train")                 # index of the one cell containing the text (error if 0 or several)
    nb.set(idx_or_id, "new source")
    nb.insert_after(idx_or_id, [("md", "text"), ("code", "source")])
    nb.save()

Python-side authoring aid only: the notebook stays the source of truth; run nbdev_export + nbdev_clean after.
"""
import json, secrets
from pathlib import Path


class NB:
    def __init__(self, path):
        self.path = Path(path)
        self.nb = json.loads(self.path.read_text()) if self.path.exists() else {
            "cells": [], "metadata": {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}

    @property
    def cells(self): return self.nb["cells"]

    def src(self, i): return "".join(self.cells[self._idx(i)]["source"])

    def _idx(self, i):
        if isinstance(i, int): return i
        hits = [k for k, c in enumerate(self.cells) if c.get("id") == i]
        if len(hits) != 1: raise KeyError(f"{self.path}: cell id {i!r} found {len(hits)} times")
        return hits[0]

    def find(self, text, kind=None):
        hits = [k for k, c in enumerate(self.cells) if text in "".join(c["source"]) and (kind is None or c["cell_type"] == kind)]
        if len(hits) != 1: raise KeyError(f"{self.path}: {text!r} found in {len(hits)} cells {hits}")
        return hits[0]

    def findall(self, text): return [k for k, c in enumerate(self.cells) if text in "".join(c["source"])]

    @staticmethod
    def make(kind, source):
        kind = {"md": "markdown", "code": "code"}.get(kind, kind)
        c = {"cell_type": kind, "id": secrets.token_hex(4), "metadata": {}, "source": source.strip("\n")}
        if kind == "code": c.update(execution_count=None, outputs=[])
        return c

    def set(self, i, source):
        c = self.cells[self._idx(i)]
        c["source"] = source.strip("\n")
        if c["cell_type"] == "code": c["outputs"], c["execution_count"] = [], None

    def replace_in(self, i, old, new, count=1):
        s = self.src(i)
        if s.count(old) != count: raise KeyError(f"{self.path} cell {i}: {old!r} occurs {s.count(old)} times, expected {count}")
        self.set(i, s.replace(old, new))

    def insert_after(self, i, cells):
        k = self._idx(i) + 1 if i is not None else len(self.cells)
        new = [self.make(kind, s) for kind, s in cells]
        self.cells[k:k] = new
        return [c["id"] for c in new]

    def insert_before(self, i, cells):
        k = self._idx(i)
        new = [self.make(kind, s) for kind, s in cells]
        self.cells[k:k] = new
        return [c["id"] for c in new]

    def delete(self, i): del self.cells[self._idx(i)]

    def append(self, cells): return self.insert_after(None, cells)

    def save(self):
        for c in self.cells:
            if isinstance(c["source"], list): c["source"] = "".join(c["source"])
        self.path.write_text(json.dumps(self.nb, indent=1, ensure_ascii=False) + "\n")
