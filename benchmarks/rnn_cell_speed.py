"""Speed of the LSTM written as an ``rnn_cell`` tree vs torch.nn.LSTM (CPU, forward + backward).

Both layers get the same weights (``copy_lstm_weights``; their outputs are checked equal first)
and the same input: batch 32, sequence 35, input and hidden 200, batch first. One timed call is
a forward pass, a scalar loss on the whole output and the backward pass. Baseline and candidate
alternate within each repeat; the script reports the medians and their ratio. The NASCell and a
2-leaf cell (the seed's example) are timed too, for reference (not part of the target).

Target: tree LSTM / torch.nn.LSTM <= 2.0.

    .venv/bin/python benchmarks/rnn_cell_speed.py [--repeats 15] [--calls 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn as nn

from archsearch.spaces.rnn_cell import LSTM, NASCELL, RNNCellArch, RNNTreeLayer, copy_lstm_weights

TARGET = 2.0


def fwd_bwd(layer: nn.Module, x: torch.Tensor) -> None:
    out, _ = layer(x)
    out.square().mean().backward()


def time_calls(layer: nn.Module, x: torch.Tensor, calls: int) -> float:
    """Seconds per forward+backward, averaged over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fwd_bwd(layer, x)
    return (time.perf_counter() - start) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--calls", type=int, default=5, help="forward+backward calls per timed block")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=35)
    ap.add_argument("--hidden", type=int, default=200)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    B, T, H = args.batch, args.seq, args.hidden
    torch.manual_seed(0)
    x = torch.randn(B, T, H)

    baseline = nn.LSTM(H, H, batch_first=True)
    tree = RNNTreeLayer(LSTM, H, H, batch_first=True)
    ref_cell = nn.LSTMCell(H, H)
    with torch.no_grad():  # the same weights in both: LSTM layer -> LSTMCell -> tree cell
        ref_cell.weight_ih.copy_(baseline.weight_ih_l0)
        ref_cell.weight_hh.copy_(baseline.weight_hh_l0)
        ref_cell.bias_ih.copy_(baseline.bias_ih_l0)
        ref_cell.bias_hh.copy_(baseline.bias_hh_l0)
    copy_lstm_weights(tree.cell, ref_cell)
    with torch.no_grad():
        a, (ha, ca) = baseline(x)
        b, (hb, cb) = tree(x)
    err = max((a - b).abs().max().item(), (ca - cb).abs().max().item())
    print(f"tree LSTM vs nn.LSTM: max |difference| of outputs and final c = {err:.2e}")
    assert err < 1e-4, "the two layers no longer compute the same function"

    others = {"NASCELL": RNNTreeLayer(NASCELL, H, H),
              "seed example (2 leaves)": RNNTreeLayer(
                  RNNCellArch.parse("[Add, Tanh, Multiply, ReLU, Multiply, Sigmoid, Add, ReLU, 1, 0]"), H, H)}
    layers = {"torch.nn.LSTM": baseline, "tree LSTM": tree, **others}
    for layer in layers.values():  # warm-up
        fwd_bwd(layer, x)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(args.repeats):
        for name, layer in layers.items():
            times[name].append(time_calls(layer, x, args.calls))
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["torch.nn.LSTM"]
    print(f"\nbatch {B}, sequence {T}, hidden {H}; forward+backward, median of {args.repeats} x {args.calls} calls")
    print(f"{'layer':<26} {'ms/call':>9} {'vs nn.LSTM':>11} {'params':>10}")
    for name, layer in layers.items():
        params = sum(p.numel() for p in layer.parameters())
        print(f"{name:<26} {med[name] * 1e3:>9.2f} {med[name] / base:>10.2f}x {params:>10,}")
    print(f"load average at end: {os.getloadavg()}")
    ratio = med["tree LSTM"] / base
    print(f"RESULT rnn_cell_speed: {ratio:.2f} (target <= {TARGET}) {'PASS' if ratio <= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
