"""How fast the command-line tools answer when nothing is to be trained: `--help` of each installed console script, an
argument error (`dvn_demo --n_train -5`) and a config error (`dvn_train` with `learning_rate: "1e-3"`), against
`python -c "import torch, transformers"` (what a command that imported the library first would pay before answering).

Wall-clock time of the whole process (the console script, through whatever shim is on PATH), median of `--repeats`.

usage: python benchmarks/bench_cli.py [--repeats 5]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import _bench as B


def timed(cmd, repeats):
    "Median wall seconds of a command (and its last exit status)."
    runs, code = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        runs.append(time.perf_counter() - t0); code = r.returncode
    return round(statistics.median(runs), 3), code


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    state = B.setup()
    n = 3 if a.quick else a.repeats
    tmp = Path(tempfile.mkdtemp())
    (tmp / "bad.json").write_text(json.dumps({"training": {"learning_rate": "1e-3"}}))
    cases = [(f"{p} --help", [shutil.which(p), "--help"]) for p in ("dvn_train", "dvn_demo", "dvn_infer", "dvn_eval", "dvn_scenarios")]
    cases += [("dvn_demo --n_train -5", [shutil.which("dvn_demo"), "--n_train", "-5"]),
              ('dvn_train, learning_rate: "1e-3"', [shutil.which("dvn_train"), "--config", str(tmp / "bad.json")]),
              ("python -c 'import torch, transformers'", [sys.executable, "-c", "import torch, transformers"])]
    rows = []
    for name, cmd in cases:
        s, code = timed(cmd, n)
        rows.append({"command": name, "seconds": s, "exit_status": code})
        print(f"{name:<40} {s:.3f} s  exit {code}", flush=True)
    summary = {**B.metadata("cli", state, a), "rows": rows, "repeats": n}
    print(B.md_table(rows, ["command", "seconds", "exit_status"]))
    print("wrote", B.write_result("cli", summary, a.out))


if __name__ == "__main__":
    main()
