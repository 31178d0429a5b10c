#!/usr/bin/python3
"""Reference figures for `weft bench ann`: hnswlib on the same data.

Generates the benchmark's base and query sets (a Gaussian mixture, each
vector normalised, fixed seed) as fvecs under --dir, then builds Debian's
python3-hnswlib at M=16, ef_construction=200 on one thread, tunes ef to the
lowest value reaching --recall at --k exactly as index.BenchANN does
(doubling from k, then bisecting), times all queries on one thread (best of
three) and prints one JSON line: qps, cpu_qps (queries per CPU-second of
the process, which a busy machine disturbs less), recall, build_seconds,
build_cpu_seconds,
bytes_per_vector (malloc's bytes in use after the build minus before, over n) and
params. Run it with /usr/bin/python3, where numpy and hnswlib are.
"""

import argparse
import ctypes
import json
import os
import time

import hnswlib
import numpy as np


def write_fvecs(path, x):
    n, d = x.shape
    rows = np.empty((n, d + 1), dtype=np.float32)
    rows[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    rows[:, 1:] = x
    rows.tofile(path)


def mixture(rng, n, centres, spread):
    pick = rng.integers(0, len(centres), size=n)
    x = centres[pick] + spread * rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_in_use():
    """Bytes malloc has handed out and not had back (glibc's mallinfo2):
    the counterpart of Go's HeapInuse. Resident memory would undercount,
    since hnswlib reuses pages that numpy freed."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    m = libc.mallinfo2()
    return m.uordblks + m.hblkhd


def ground_truth(base, queries, k, chunk=250):
    out = np.empty((len(queries), k), dtype=np.int64)
    for i in range(0, len(queries), chunk):
        sims = queries[i:i + chunk] @ base.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[i:i + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found, truth):
    k = truth.shape[1]
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / (len(truth) * k)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/weft-ann")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--spread", type=float, default=1.0, help="noise scale around each centre (centres are N(0,1))")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--recall", type=float, default=0.95)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.clusters, a.dim), dtype=np.float32)
    base = mixture(rng, a.n, centres, a.spread)
    queries = mixture(rng, a.queries, centres, a.spread)
    os.makedirs(a.dir, exist_ok=True)
    write_fvecs(os.path.join(a.dir, "base.fvecs"), base)
    write_fvecs(os.path.join(a.dir, "queries.fvecs"), queries)
    truth = ground_truth(base, queries, a.k)

    before = heap_in_use()
    start, cpu_start = time.perf_counter(), time.process_time()
    p = hnswlib.Index(space="ip", dim=a.dim)  # 1 - dot, as Weft's cosine on unit vectors
    p.init_index(max_elements=a.n, M=a.M, ef_construction=a.ef_construction, random_seed=100)
    p.add_items(base, np.arange(a.n), num_threads=1)
    build, build_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    per_vector = (heap_in_use() - before) / a.n

    def run(ef):
        p.set_ef(ef)
        t, c = time.perf_counter(), time.process_time()
        labels, _ = p.knn_query(queries, k=a.k, num_threads=1)
        return time.perf_counter() - t, time.process_time() - c, labels

    def recall_at(ef):
        return recall(run(ef)[2], truth)

    ef = a.k
    while recall_at(ef) < a.recall and ef < a.n:
        ef *= 2
    lo = ef // 2
    while ef > a.k and ef - lo > 1:
        mid = (lo + ef) // 2
        if recall_at(mid) >= a.recall:
            ef = mid
        else:
            lo = mid
    runs = [run(ef) for _ in range(3)]
    print(json.dumps({
        "qps": len(queries) / min(r[0] for r in runs),
        "cpu_qps": len(queries) / min(r[1] for r in runs),
        "recall": recall(runs[0][2], truth),
        "build_seconds": build,
        "build_cpu_seconds": build_cpu,
        "bytes_per_vector": per_vector,
        # hnswlib's own layout: vector, level-0 links (count + 2M ids), label.
        "bytes_per_vector_layout": a.dim * 4 + (2 * a.M + 1) * 4 + 8,
        "params": {"M": a.M, "ef_construction": a.ef_construction, "ef_search": ef},
        "data": {"n": a.n, "queries": a.queries, "dim": a.dim, "clusters": a.clusters,
                 "spread": a.spread, "seed": a.seed, "dir": a.dir},
    }))


if __name__ == "__main__":
    main()
