"""The demo's training step on a CPU that other jobs share: torch threads fixed at 2 (OpenMP threads spin while they wait
for each other) against `CPUThreadsCB` (the default: the threads follow the cores other processes leave free), alone and
beside 1 or 3 competing jobs (each one the same training, 2 threads, fixed), and the alternative not adopted
(`OMP_WAIT_POLICY=PASSIVE`: threads sleep instead of spinning).

Each measurement is a training process of its own (`demo_config` on a 400-image demo set with the sample cache, so the
data is not what is measured) that runs `--seconds` and reports its step times; the figure is the median seconds per
step over the second half of the run (after the threads adapted), and its ratio to the machine's idle 2-thread step.

usage: python benchmarks/bench_contention.py [--seconds 40] [--quick]
       (it needs the machine to itself: every competitor is started by the benchmark)
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).parent


def worker(a):
    "One training process: `demo_config` with the given threads for `seconds`; step end times and thread changes to `out`."
    import torch
    from dual_vision_nb.config import DVNConfig
    from dual_vision_nb.trainer import Callback
    from dual_vision_nb.recipe import build_run
    from dual_vision_nb.demo import demo_config
    data = {"train": Path(a.data) / "train.json", "val": Path(a.data) / "val.json"}
    cfg = demo_config(Path(a.run), data, max_time=a.seconds, save_every_steps=10 ** 9, num_epochs=1000,
                      cpu_threads=None if a.threads == "auto" else int(a.threads))
    cfg["data"]["val_data_path"] = None
    cfg["logging"] = {"tensorboard": False, "progress_bar": False, "csv": False}
    learn = build_run(DVNConfig.from_dict(cfg))
    times = []
    class Times(Callback):
        def after_step(self): times.append(time.monotonic())
    learn.cbs.append(Times()); learn.cbs[-1].learn = learn
    learn.cbs = [c for c in learn.cbs if type(c).__name__ != "CheckpointCB"]   # nothing written: only the steps count
    learn.fit()
    changes = next((c.changes for c in learn.cbs if type(c).__name__ == "CPUThreadsCB"), [])
    Path(a.out).write_text(json.dumps({"times": times, "changes": changes, "threads_start": learn.cfg.cpu_threads or torch.get_num_threads()}))


def _proc(data, run, seconds, threads, out, env=None):
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.Popen([sys.executable, __file__, "--worker", "--data", str(data), "--run", str(run), "--seconds", str(seconds),
                             "--threads", threads, "--out", str(out)], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def measure(tmp, name, threads, competitors, seconds, env=None):
    "Median s/step of one target run over its second half, beside `competitors` 2-thread training jobs."
    comps = [_proc(tmp / "data", tmp / f"comp{i}", 10 ** 6, "2", tmp / f"comp{i}.json") for i in range(competitors)]
    try:
        if comps: time.sleep(15)                                            # the competitors are training before we start
        p = _proc(tmp / "data", tmp / name, seconds, threads, tmp / f"{name}.json", env)
        _, err = p.communicate(timeout=seconds * 6 + 300)
        if p.returncode: raise RuntimeError(f"{name}: {err[-2000:]}")
    finally:
        for c in comps: c.kill(); c.wait()
    r = json.loads((tmp / f"{name}.json").read_text())
    t = r["times"]; start = t[0] + (t[-1] - t[0]) / 2
    steps = [b - a for a, b in zip(t, t[1:]) if a >= start]
    used = r["changes"][-1]["threads"] if r["changes"] else r["threads_start"]
    return {"variant": name, "threads": threads, "competitors": competitors, "env": env or {}, "steps_timed": len(steps),
            "s_per_step": round(statistics.median(steps), 4), "thread_changes": r["changes"], "threads_in_second_half": used}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40, help="training seconds of each measured run")
    ap.add_argument("--quick", action="store_true", help="alone and 1 competitor only, 20 s runs")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for k in ("data", "run", "threads"): ap.add_argument(f"--{k}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a)
    import _bench as B
    from dual_vision_nb.data import make_shapes_dataset
    from dual_vision_nb.demo import DEMO_DATA
    state = B.setup()
    seconds = 20 if a.quick else a.seconds
    tmp = Path(tempfile.mkdtemp())
    make_shapes_dataset(tmp / "data", n_train=400, n_val=10, seed=0, **DEMO_DATA)
    # the two idle variants twice, alternating, each keeping its faster run: the idle figures are the ones others divide by
    plan = [("alone_fixed2", "2", 0, None), ("alone_adaptive", "auto", 0, None)] * 2
    plan += [("one_job_fixed2", "2", 1, None), ("one_job_adaptive", "auto", 1, None)]
    if not a.quick:
        plan += [("one_job_fixed1", "1", 1, None), ("three_jobs_fixed2", "2", 3, None), ("three_jobs_adaptive", "auto", 3, None),
                 ("alone_passive", "2", 0, {"OMP_WAIT_POLICY": "PASSIVE"}), ("one_job_passive", "2", 1, {"OMP_WAIT_POLICY": "PASSIVE"})]
    rows = {}
    for name, threads, comps, env in plan:
        r = measure(tmp, name, threads, comps, seconds, env)
        print(f"{name:<22} {r['s_per_step']:.3f} s/step  threads in the second half {r['threads_in_second_half']}", flush=True)
        if name not in rows or r["s_per_step"] < rows[name]["s_per_step"]: rows[name] = r
    rows = list(rows.values())
    idle = rows[0]["s_per_step"]
    for r in rows: r["x_idle_2_threads"] = round(r["s_per_step"] / idle, 2)
    summary = {**B.metadata("contention", state, a), "rows": rows,
               "fair_share_x": {"1 competing 2-thread job": 2.0, "3 competing 2-thread jobs": 4.0}}
    print(B.md_table(rows, ["variant", "competitors", "s_per_step", "x_idle_2_threads", "threads_in_second_half"]))
    print("wrote", B.write_result("contention", summary, a.out))


if __name__ == "__main__":
    main()
