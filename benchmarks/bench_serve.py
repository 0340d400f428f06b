"""Load run of `genspot serve` on loopback: latency p50/p95, throughput and errors.

    python benchmarks/bench_serve.py [--model default] [--clients 8] [--small 200] [--large 50]
                                     [--precision fp32 [bf16]]

Starts the server as its own process (as a user would), waits for /healthz, then runs
`--clients` concurrent clients, each sending `--small` POST /v1/predict requests of one 32x32
JPEG, then each sending `--large` requests of one 1024x1024 JPEG. Target (issue 6): 0 errors and
p95 under 200 ms for 32x32 on 2 cores. Several --precision values: one server after another,
in the same run.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image


def jpeg(size: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    # a smooth image with some noise: closer to a photo's JPEG size than pure noise
    base = np.linspace(0, 255, size, dtype=np.float32)
    img = (base[None, :, None] * 0.6 + base[:, None, None] * 0.3 + rng.normal(0, 12, (size, size, 3))).clip(0, 255)
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def load(url: str, data: bytes, clients: int, per_client: int) -> dict:
    def client(_):
        lat, errors = [], 0
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(per_client):
                t = time.perf_counter()
                try:
                    r = c.post("/v1/predict", files=[("files", ("img.jpg", data, "image/jpeg"))])
                    ok = r.status_code == 200 and r.json()["results"][0]["error"] is None
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                errors += not ok
        return lat, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    lat = sorted(x for r in results for x in r[0])
    return {
        "requests": len(lat),
        "errors": sum(r[1] for r in results),
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
        "throughput_rps": len(lat) / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--small", type=int, default=200, help="32x32 requests per client")
    ap.add_argument("--large", type=int, default=50, help="1024x1024 requests per client")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="`genspot serve --precision`")
    args = ap.parse_args()
    for precision in args.precision:
        run_server(args, precision)


def run_server(args: argparse.Namespace, precision: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    exe = os.path.join(os.path.dirname(sys.executable), "genspot")
    server = subprocess.Popen([exe, "serve", "--model", args.model, "--port", str(port), "--precision", precision],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("server did not start")
        load(url, jpeg(32), 2, 10)  # warm-up
        print(f"genspot serve, model {args.model} ({precision}), {args.clients} concurrent clients, {os.cpu_count()} CPUs")
        for name, size, n in (("32x32 JPEG", 32, args.small), ("1024x1024 JPEG", 1024, args.large)):
            r = load(url, jpeg(size), args.clients, n)
            print(f"{name:15s} {r['requests']:5d} requests  errors {r['errors']}  p50 {r['p50_ms']:7.1f} ms  "
                  f"p95 {r['p95_ms']:7.1f} ms  {r['throughput_rps']:7.1f} req/s")  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
