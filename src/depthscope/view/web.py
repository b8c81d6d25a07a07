"""``depthscope view``: the explorer as a local Gradio app. Click a pixel of the depth map, drag or type a box, or
pick mean / near / far / a grid cell, and see every chosen method's map of that target; the curves and both AF
readings on demand; two models side by side with their agreement. Fully offline: system fonts, no analytics,
no CDN, no hub call; the server binds 127.0.0.1 unless told otherwise."""

import json
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry, no version check

from depthscope.config import group_options  # noqa: E402
from depthscope.data.datasets import DepthDataset  # noqa: E402
from depthscope.errors import DepthscopeError, InputError, warn  # noqa: E402
from depthscope.explain import METHODS  # noqa: E402
from depthscope.models import DepthModel  # noqa: E402
from depthscope.view.session import Explorer, png_bytes  # noqa: E402

TARGETS = ["pixel (click the depth map)", "box (drag on the depth map, or type y0,x0,y1,x1)", "mean", "near", "far",
           "grid cell"]  # fmt: skip
KIND = dict(zip(TARGETS, ["pixel", "box", "mean", "near", "far", "cell"], strict=True))


class Cancelled(Exception):  # noqa: N818  (a user's request, not an error)
    """The user pressed Cancel."""


MAX_SESSIONS = 16  # browser tabs whose image and last panel are kept

# A drag on the depth map writes its box (image pixels, end-exclusive) into the box field and presses "explain
# box"; a click
# without movement is left to Gradio's select event (a pixel target).
DRAG_JS = """
<script>
(() => {
  let start = null, dragged = false;
  const target = e => (e.target.tagName === 'IMG' && e.target.closest('#depth_view')) ? e.target : null;
  const at = (im, e) => { const r = im.getBoundingClientRect();
    return [Math.floor((e.clientY - r.top) * im.naturalHeight / r.height),
            Math.floor((e.clientX - r.left) * im.naturalWidth / r.width)]; };
  document.addEventListener('mousedown', e => { const im = target(e); if (!im) return;
    e.preventDefault(); start = [im, at(im, e)]; dragged = false; }, true);
  document.addEventListener('mouseup', e => { if (!start) return; const [im, a] = start; start = null;
    const b = at(im, e); if (Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) < 4) return;
    dragged = true;
    const box = document.querySelector('#box textarea, #box input');
    box.value = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]) + 1, Math.max(a[1], b[1]) + 1].join(',');
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#box_go').click(), 50);
  }, true);
  document.addEventListener('click', e => { if (dragged && target(e)) { e.stopPropagation(); e.preventDefault(); }
    dragged = false; }, true);
})();
</script>
"""
CSS = "#depth_view img{cursor:crosshair} #stats textarea{font-family:monospace;font-size:12px}"


def _theme():  # noqa: ANN202
    import gradio as gr

    # system fonts: the default theme would fetch web fonts from a CDN
    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def app(
    models: Sequence[DepthModel | str] = ("meter-xxs-nyu",),
    data: DepthDataset | str | os.PathLike | None = None,
    device: str = "cpu",
    models_dir: Sequence[str | os.PathLike] | None = None,
):  # noqa: ANN201  (a gradio.Blocks)
    """The explorer's Gradio app (``pip install -e ".[view]"``), for notebooks; :func:`serve` launches it.

    Args:
        models: one or two models (names or :class:`DepthModel` s), shown side by side.
        data: a dataset folder (any layout ``evaluate`` reads) for the thumbnail strip, or None (upload only).
        device: where models given by name are loaded.
        models_dir: the folders whose optimised checkpoints the page's "compare with" box may load (default: the
            current directory); it never loads entry points or ``hf:`` folders (:func:`~.session.page_model`).

    Returns:
        A ``gradio.Blocks``; launch it with :func:`serve` (offline theme, 127.0.0.1).

    Example:
        >>> from depthscope.data import find_data
        >>> demo = app(["meter-xxs-nyu"], find_data())  # doctest: +SKIP
        >>> serve(demo, port=7860)  # doctest: +SKIP
    """
    import gradio as gr

    base = Explorer(models, data, device, models_dir)
    sessions: dict[str, Explorer] = {}
    names = [m.name for m in base.models]
    two = len(names) == 2
    files_dir = Path(tempfile.mkdtemp(prefix="depthscope-view-"))

    def session(request: gr.Request | None) -> Explorer:
        key = getattr(request, "session_hash", None) or "default"
        if key not in sessions:  # models are shared; the image and the last panel are per browser tab
            if len(sessions) >= MAX_SESSIONS:  # a long-running server forgets the oldest tab first
                sessions.pop(next(iter(sessions)))
            sessions[key] = Explorer(base.models, base.data, device, models_dir)
            sessions[key].running = set()
        return sessions[key]

    def views(ex: Explorer) -> list[Any]:
        names = list(ex.by_name)
        gt = ex.gt_views(names[0])
        metrics = {m: ex.metrics(m) for m in names}
        lines = [f"**{ex.name}**" + ("" if ex.gt is not None else " (no ground truth)")]
        for m, vals in metrics.items():
            if vals:
                extra = f", boundary F1 {vals['boundary_f1']:.3f}" if "boundary_f1" in vals else ""
                if "chamfer" in vals:
                    extra += f", Chamfer {vals['chamfer']:.3f} m, normals {vals['normal_median_deg']:.1f}° median"
                lines.append(f"{m}: RMSE {vals['rmse']:.3f} m, AbsRel {vals['abs_rel']:.3f}, δ1 {vals['delta1']:.3f}"
                             + extra)  # fmt: skip
        out = [ex.image.permute(1, 2, 0).numpy(), ex.depth_view(names[0])]
        out.append(gr.update(value=ex.depth_view(names[1]), visible=True, label=f"{names[1]}: predicted depth")
                   if len(names) == 2 else gr.update(value=None, visible=False))  # fmt: skip
        out += [gt[0] if gt else None, gt[1] if gt else None, "\n\n".join(lines), ""]
        return out

    def show(index: int, request: gr.Request):
        ex = session(request)
        try:
            ex.select(index)
        except DepthscopeError as e:
            return [gr.update()] * 6 + [f"⚠ {e}"]
        return views(ex)

    def on_load(request: gr.Request):
        return show(0, request)

    def on_thumb(evt: gr.SelectData, request: gr.Request):
        return show(evt.index, request)

    def on_upload(file, request: gr.Request):  # noqa: ANN001
        ex = session(request)
        try:
            ex.upload(file if isinstance(file, str) else file.name)
        except DepthscopeError as e:
            return [gr.update()] * 6 + [f"⚠ {e}"]
        return views(ex)

    def run(ex: Explorer, spec_of, methods, options_text, progress) -> list[Any]:  # noqa: ANN001
        token = threading.Event()  # this run's own: a Cancel sets the tokens of the runs going at that moment
        ex.running.add(token)

        def step(fraction: float, desc: str = "") -> None:  # before each map: a Cancel stops here
            if token.is_set():
                raise Cancelled
            progress(fraction, desc=desc)

        try:
            options = group_options([line for line in (options_text or "").splitlines() if line.strip()])
            spec = spec_of(ex)
            panels = ex.explain(spec, methods, options, progress=step)
        except Cancelled:
            return [gr.update()] * 4 + ["cancelled: the maps shown are the previous target's"]
        except DepthscopeError as e:
            return [gr.update()] * 4 + [f"⚠ {e}"]
        finally:
            ex.running.discard(token)
        ex.last = (panels, spec, list(methods), options)
        info = ex.panel_json(panels, methods, options)
        path = files_dir / f"{ex.name}_{spec.replace(':', '_').replace(',', '_').replace('#', '_')}"
        png, js = path.with_suffix(".png"), path.with_suffix(".json")
        maps = ex.maps_view(panels)
        png.write_bytes(png_bytes(maps))
        js.write_text(json.dumps(info, indent=1))
        status = " · ".join(f"{m}: target depth {p.target_depth_m:.3f} m" for m, p in panels.items())
        return [maps, json.dumps(info, indent=1), ex.command(spec, methods, options), [str(png), str(js)], status]

    def on_click(evt: gr.SelectData, methods, options_text, request: gr.Request, progress=gr.Progress()):  # noqa: ANN001, B008
        x, y = evt.index
        return run(session(request), lambda ex: ex.target_spec("pixel", y=int(y), x=int(x)), methods, options_text,
                   progress)  # fmt: skip

    def on_box(box, methods, options_text, request: gr.Request, progress=gr.Progress()):  # noqa: ANN001, B008
        return run(session(request), lambda ex: ex.target_spec("box", box=box), methods, options_text, progress)

    def on_explain(kind, box, q, grid, cell, methods, options_text, request: gr.Request, progress=gr.Progress()):  # noqa: ANN001, B008
        def spec_of(ex: Explorer) -> str:
            if KIND[kind] == "pixel":
                raise DepthscopeError("click a pixel of the depth map to explain it")
            return ex.target_spec(KIND[kind], box=box or "", q=float(q), grid=int(grid), cell=int(cell))

        return run(session(request), spec_of, methods, options_text, progress)

    def on_compare(name, request: gr.Request):  # noqa: ANN001
        ex = session(request)
        try:
            shown = ex.compare_with((name or "").strip() or None)
        except DepthscopeError as e:
            return [gr.update()] * 6 + [f"⚠ {e}"]
        if hasattr(ex, "last"):
            del ex.last  # the last panel was of other models
        out = views(ex) if ex.image is not None else [gr.update()] * 7
        out[-1] = "showing " + " and ".join(shown)
        return out

    def on_cancel(request: gr.Request) -> str:
        for token in list(session(request).running):  # the running handlers stop before their next map
            token.set()
        return "cancelled: the maps shown are the previous target's"

    def on_curves(request: gr.Request, progress=gr.Progress()):  # noqa: B008
        from depthscope.output.figures import curves_figure

        ex = session(request)
        if not hasattr(ex, "last"):
            return None, "", "⚠ explain a target first"
        progress(0, desc="perturbation curves")
        result = ex.curves(ex.last[0])
        curves = {k: {o: [v[o]] for o in ("morf", "lerf", "random")} for k, v in result.items()}
        notes = {k: f"AF = {v['af_perturbation']:.3f}, r_depth = {v['af_depth_correlation']:.3f}"
                 for k, v in result.items()}  # fmt: skip
        path = curves_figure(curves, next(iter(result.values()))["fractions"], files_dir / f"{ex.name}_curves.png",
                             notes=notes)  # fmt: skip
        summary = {k: {"af_perturbation": v["af_perturbation"], "af_depth_correlation": v["af_depth_correlation"]}
                   for k, v in result.items()}  # fmt: skip
        return str(path), json.dumps(summary, indent=1), "curves: blur replacement, 8-px patches, 0-50 %"

    with gr.Blocks(title="depthscope view", analytics_enabled=False) as demo:
        gr.Markdown(f"### depthscope view: {' vs '.join(names)}")
        with gr.Row():
            if base.data is not None:
                thumbs = gr.Gallery(
                    [(base.data[i].image.permute(1, 2, 0).numpy()[::4, ::4], base.data.key(i))
                     for i in range(min(len(base.data), 24))],
                    label="dataset", columns=8, height=150, allow_preview=False, elem_id="thumbs",
                )  # fmt: skip
            upload = gr.File(label="or upload an image", elem_id="upload", height=150)
        with gr.Row():
            image = gr.Image(label="input image", interactive=False, elem_id="image_view", format="png")
            depth = gr.Image(label=f"{names[0]}: predicted depth (click a pixel, drag a box)", interactive=False,
                             elem_id="depth_view", format="png")  # fmt: skip
            depth_b = gr.Image(label=f"{names[-1]}: predicted depth", interactive=False, visible=two, format="png",
                               elem_id="depth_b")  # fmt: skip
        with gr.Row():
            gt_view = gr.Image(label="ground truth", interactive=False, format="png")
            err_view = gr.Image(label="absolute error", interactive=False, format="png")
            metrics = gr.Markdown(elem_id="metrics")
        with gr.Row():
            kind = gr.Radio(TARGETS, value=TARGETS[0], label="target", elem_id="kind")
            with gr.Column():
                box = gr.Textbox(label="box y0,x0,y1,x1 (Enter)", elem_id="box", max_lines=1)
                box_go = gr.Button("explain box", elem_id="box_go", size="sm")
            q = gr.Number(0.1, label="near/far fraction", minimum=0.01, maximum=1)
            grid = gr.Number(4, label="grid G", precision=0, minimum=1)
            cell = gr.Number(0, label="cell (row-major)", precision=0, minimum=0)
        with gr.Row():
            methods = gr.CheckboxGroup(METHODS.names(), value=["saliency"], label="methods", elem_id="methods")
            options = gr.Textbox(label="options, one NAME.KEY=VALUE per line", lines=2, elem_id="options",
                                 placeholder="integrated_gradients.tolerance=0.02")  # fmt: skip
        with gr.Row():
            compare = gr.Textbox(label="compare with: a model name or an optimised .safetensors (empty: none)",
                                 value=names[1] if two else "", elem_id="compare", max_lines=1)  # fmt: skip
            compare_btn = gr.Button("show side by side", elem_id="compare_btn", size="sm")
        with gr.Row():
            go = gr.Button("Explain", variant="primary", elem_id="explain_btn")
            curves_btn = gr.Button("Curves and AF", elem_id="curves_btn")
            cancel = gr.Button("Cancel", elem_id="cancel_btn")
        status = gr.Markdown(elem_id="status")
        maps = gr.Image(label="maps (one shared scale)", interactive=False, elem_id="maps", format="png")
        with gr.Row():
            stats = gr.Textbox(label="numbers (JSON)", lines=12, elem_id="stats")
            with gr.Column():
                command = gr.Textbox(label="copy as command", elem_id="command", buttons=["copy"])
                downloads = gr.File(label="download: panel PNG and JSON", file_count="multiple")
        with gr.Row():
            curves = gr.Image(label="curves", interactive=False, elem_id="curves", format="png")
            af = gr.Textbox(label="Attribution Fidelity", lines=6, elem_id="af")

        image_outputs = [image, depth, depth_b, gt_view, err_view, metrics, status]
        panel_outputs = [maps, stats, command, downloads, status]
        if base.data is not None:
            thumbs.select(on_thumb, None, image_outputs)
            demo.load(on_load, None, image_outputs)
        upload.upload(on_upload, upload, image_outputs)
        compare_btn.click(on_compare, compare, image_outputs)
        # one model computation at a time (concurrency_id shared): a click after Cancel waits for the cancelled
        # handler to stop at its next map instead of racing it for the CPU
        work = {"concurrency_limit": 1, "concurrency_id": "model"}
        events = [
            depth.select(on_click, [methods, options], panel_outputs, **work),
            box.submit(on_box, [box, methods, options], panel_outputs, **work),
            box_go.click(on_box, [box, methods, options], panel_outputs, **work),
            go.click(on_explain, [kind, box, q, grid, cell, methods, options], panel_outputs, **work),
            curves_btn.click(on_curves, None, [curves, af, status], **work),
        ]
        cancel.click(on_cancel, None, status, cancels=events)
    demo.busy = lambda: any(getattr(ex, "running", ()) for ex in sessions.values())  # a map is being computed
    demo.handlers = {"click": on_click, "box": on_box, "explain": on_explain, "curves": on_curves,
                     "upload": on_upload, "compare": on_compare, "session": session}  # fmt: skip
    return demo


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``"user:password"`` as a pair (None: no login); anything else is one error naming ``--auth``."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise InputError("--auth takes USER:PASSWORD (both non-empty)")
    return user, password


def serve(
    demo: Any, host: str = "127.0.0.1", port: int = 7860, block: bool = True, auth: tuple[str, str] | None = None
) -> Any:
    """Launch ``demo`` (from :func:`app`) with the offline theme, the drag-a-box script and no share link.

    Args:
        demo: the app :func:`app` returned.
        host: the interface to bind (default: this machine only). Any other is warned about loudly: the page's
            HTTP API then answers anyone who can reach the port (with ``auth``, anyone who has the password).
        port: the port.
        block: wait until the server stops (the CLI); False returns at once (tests, notebooks).
        auth: ``(user, password)`` the page and its API ask for (None: no login).

    Returns:
        What ``gradio.Blocks.launch`` returns (the app, its local URL, and no share URL).
    """
    if not is_loopback(host):
        warn(
            f"the explorer listens on {host}:{port}, beyond this machine: anyone who reaches it can run the models "
            "on their images and read the dataset"
            + ("" if auth else "; no login is asked (--auth USER:PASSWORD asks for one)")
        )
    demo.queue(default_concurrency_limit=1)
    return demo.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=not block,
        theme=_theme(), css=CSS, head=DRAG_JS, footer_links=[], show_error=True, auth=auth,
    )  # fmt: skip
