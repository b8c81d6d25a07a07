"""Click-to-updated-map time of `depthscope view`, through the app's own click handler (target, maps, the shared
-scale overlay, the JSON, the command and the download files), for saliency and adaptive IG on METER-XXS at
480x640, beside the model's own forward+backward floor for the same pixel target, in one run.

Run: python benchmarks/view_latency.py   (goal: saliency under 0.5 s)
"""

from __future__ import annotations

import statistics
import time

import gradio as gr
import torch
from _common import setup

from depthscope.explain import target_model
from depthscope.view import app

PIXELS = [(60, 80), (120, 500), (240, 320), (400, 100), (300, 600)]


def main() -> None:
    model, ds = setup()
    demo = app([model], ds)
    click, session = demo.handlers["click"], demo.handlers["session"]
    session(None).select(0)
    x = ds[0].image[None]

    def floor(y: int, xx: int) -> None:  # one forward + one backward of the pixel target: saliency's own cost
        f = target_model(model, x, f"pixel:{y},{xx}")
        xi = x.clone().requires_grad_()
        f(xi)[0, 0].backward()

    def handler(y: int, xx: int, methods: list[str], options: str) -> float:
        evt = gr.SelectData(None, {"index": [xx, y], "value": None, "selected": True})
        t0 = time.perf_counter()
        out = click(evt, methods, options, None, progress=lambda *a, **k: None)
        assert not out[-1].startswith("⚠"), out[-1]
        return time.perf_counter() - t0

    floor(*PIXELS[0]), handler(*PIXELS[0], ["saliency"], "")  # warm-up
    rows = []
    for name, methods, options in (
        ("saliency", ["saliency"], ""),
        ("adaptive IG (2 %)", ["integrated_gradients"], "integrated_gradients.tolerance=0.02"),
    ):
        times, floors = [], []
        for y, xx in PIXELS:
            t0 = time.perf_counter()
            floor(y, xx)
            floors.append(time.perf_counter() - t0)
            times.append(handler(y, xx, methods, options))
        rows.append((name, statistics.median(times), max(times), statistics.median(floors)))
    print(f"threads={torch.get_num_threads()} image 480x640, {len(PIXELS)} clicks each")
    for name, med, worst, fl in rows:
        print(f"{name:20s} click-to-map median {med:.3f} s (worst {worst:.3f} s); forward+backward floor "
              f"{fl:.3f} s; ratio {med / fl:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
