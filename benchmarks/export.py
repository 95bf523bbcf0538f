"""Export of the main job's model: seconds per format, and ONNX Runtime vs PyTorch CPU latency.

Runs the main job (``archsearch search`` with no arguments; or takes a finished run with --run),
then ``archsearch.deploy.export.export_run`` for each format separately (each timed with its
check on the run's test split), then the median forward latency at batch 1 and 64 of the
PyTorch model (with its preprocessing), the TorchScript file and the ONNX file under ONNX
Runtime, all on the same raw inputs in the same process. Ratios are against PyTorch measured
in this run (the machines are shared and noisy).

    .venv/bin/python benchmarks/export.py [--run runs/DIR] [--threads 2] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch


def median_seconds(fn, x, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finished search directory (default: run the main job first)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and ORT intra-op threads")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import onnxruntime as ort

    import archsearch
    from archsearch.deploy.export import check_data, export_run

    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="archsearch-export-bench-")
    run = args.run
    if run is None:
        run = os.path.join(tmp, "run")
        exe = os.path.join(os.path.dirname(sys.executable), "archsearch")
        start = time.perf_counter()
        subprocess.run([exe, "search", "--out", run, "--quiet"], check=True)
        print(f"main job: {time.perf_counter() - start:.0f} s -> {run}")
    print(f"cores: {os.cpu_count()}  threads: {args.threads}  loadavg: {os.getloadavg()[0]:.2f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = archsearch.load_model(run)
    print(f"model: {model.info['space']} {model.info['arch']}")
    print(f"test_acc (search's report): {model.info['metrics'].get('test_acc', float('nan')):.4f}")

    print("\nexport, one format at a time (export + its check on the run's test split)")
    print(f"{'format':<12} {'export s':>9} {'total s':>8} {'agree':>11} {'max |diff|':>11}")
    out_dir = os.path.join(tmp, "export")
    checks = {}
    for fmt in ("onnx", "torchscript", "code"):
        start = time.perf_counter()
        report = export_run(run, [fmt], out_dir)
        total = time.perf_counter() - start
        e = checks[fmt] = report.exported[0]
        print(f"{fmt:<12} {e.seconds:>9.2f} {total:>8.2f} {e.agree:>5}/{e.total:<5} {e.max_diff:>11.2e}")

    data = check_data(model, model.info)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    session = ort.InferenceSession(os.path.join(out_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(os.path.join(out_dir, "model.torchscript.pt")).eval()

    print("\nCPU latency, median of", args.repeats, "forward passes on raw test inputs (ms)")
    print(f"{'batch':>5} {'pytorch':>9} {'torchscript':>12} {'onnxruntime':>12} {'ort/pytorch':>12}")
    for batch in (1, 64):
        x = data.x[:batch]
        if len(x) < batch:
            x = x.repeat((batch + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:batch]
        xn = x.numpy().astype(np.int64 if model.is_language_model else np.float32)
        with torch.no_grad():
            t_torch = median_seconds(model, x, args.repeats)
            t_script = median_seconds(scripted, x, args.repeats)
        t_ort = median_seconds(lambda a: session.run(None, {name: a}), xn, args.repeats)
        print(f"{batch:>5} {t_torch * 1e3:>9.3f} {t_script * 1e3:>12.3f} {t_ort * 1e3:>12.3f} {t_ort / t_torch:>12.2f}")
    print(f"loadavg at end: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    onnx = checks["onnx"]
    same = all(e.agree == e.total for e in checks.values())
    ok = onnx.max_diff <= 1e-4 and same
    print(f"RESULT export: onnx max |logit diff| {onnx.max_diff:.2e}, every format the same predictions: {same} "
          f"(target <= 1e-04 and True) {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
