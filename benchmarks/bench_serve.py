"""`dvn_serve` under load: N concurrent OpenAI clients against the server with batching (max_batch 8) and without (1).

A model of the demo's size (random weights, spread so answers are not one token), served in-process on 127.0.0.1 by
uvicorn, two servers (batching on and off) interleaved round by round. Each round: `--clients` threads, each sending
`--requests` chat completions in turn (its own image per request, greedy, max_tokens 16). Greedy answers are the same
with and without batching (contract 6), so both settings generate the same tokens. Reported: requests per second over
the round and the p50 / p95 latency of a request, the fastest round of each (the machine is shared), and the batch
sizes the batching server ran.

usage: OMP_NUM_THREADS=1 python benchmarks/bench_serve.py [--clients 8] [--requests 4] [--rounds 3] [--quick]
"""
import argparse, base64, io, socket, statistics, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import torch
import _bench as B


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8); ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3); ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true"); ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.quick: a.clients, a.requests, a.rounds = 4, 2, 1
    state = B.setup(a.threads)
    import uvicorn
    from openai import OpenAI
    from PIL import Image
    from dual_vision_nb.encoders import build_processor
    from dual_vision_nb.inference import load_for_inference
    from dual_vision_nb.serve import create_app
    fused, _ = B.model_pair("demo")
    with torch.no_grad():
        for p in fused.parameters():
            if p.ndim == 2: p.normal_(std=0.2)
    tmp = Path(tempfile.mkdtemp())
    fused.save_pretrained(tmp / "model"); build_processor().save_pretrained(tmp / "model")
    model = load_for_inference(tmp / "model")
    servers, clients = {}, {}
    for name, mb in (("batching", 8), ("one_by_one", 1)):
        app = create_app(model, max_batch=mb, max_wait=0.01)
        with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=srv.run, daemon=True).start()
        while not srv.started: time.sleep(0.05)
        servers[name], clients[name] = (srv, app), OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)

    def uri(k):
        im = Image.new("RGB", (56 + 28 * (k % 4), 56 + 28 * (k % 3)), (37 * k % 256, 91 * k % 256, 53 * k % 256))
        buf = io.BytesIO(); im.save(buf, format="PNG"); return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    images = [uri(k) for k in range(a.clients * a.requests)]

    def one_round(client):
        lat = []
        def worker(c):
            out = []
            for r in range(a.requests):
                t0 = time.perf_counter()
                ans = client.chat.completions.create(model="dual-vision", max_tokens=16, messages=[{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": images[c * a.requests + r]}}, {"type": "text", "text": "What color is it?"}]}])
                lat.append(time.perf_counter() - t0); out.append(ans.choices[0].message.content)
            return out
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.clients) as ex: answers = list(ex.map(worker, range(a.clients)))
        wall = time.perf_counter() - t0
        q = statistics.quantiles(lat, n=20)
        return {"wall_s": round(wall, 3), "req_per_s": round(len(lat) / wall, 2), "p50_s": round(statistics.median(lat), 3),
                "p95_s": round(q[18], 3)}, answers

    rounds = {n: [] for n in servers}
    answers = {}
    for _ in range(a.rounds):
        for n in servers:
            r, answers[n] = one_round(clients[n]); rounds[n].append(r)
            print(f"{n}: {r}", flush=True)
    same = answers["batching"] == answers["one_by_one"]
    best = {n: max(rs, key=lambda r: r["req_per_s"]) for n, rs in rounds.items()}
    sizes = servers["batching"][1].state.batcher.sizes
    summary = {**B.metadata("bench_serve", state, a), "model": "demo size, random weights", "same_answers": same,
               "best": best, "rounds": rounds, "speedup": round(best["batching"]["req_per_s"] / best["one_by_one"]["req_per_s"], 2),
               "batch_sizes": {"mean": round(sum(sizes) / len(sizes), 2), "max": max(sizes), "n": len(sizes)}}
    out = B.write_result("serve", summary, a.out)
    print(B.md_table([{"server": n, **best[n]} for n in best], ["server", "req_per_s", "p50_s", "p95_s", "wall_s"],
                     ["server", "requests / s", "p50 latency s", "p95 latency s", "round wall s"]))
    print(f"\nsame answers with and without batching: {same}; batches: mean {summary['batch_sizes']['mean']}, max {max(sizes)}")
    print(f"wrote {out}")
    for srv, _ in servers.values(): srv.should_exit = True


if __name__ == "__main__":
    main()
