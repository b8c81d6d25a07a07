"""``depthscope view``: an interactive explorer in the browser (Gradio, optional extra ``[view]``)."""

from depthscope.view.session import Explorer, Panel

__all__ = ["Explorer", "Panel", "app", "serve"]


def __getattr__(name: str):  # noqa: ANN202  (gradio is imported only when the app is asked for)
    if name in ("app", "serve"):
        from depthscope.view import web as module

        return getattr(module, name)
    raise AttributeError(name)
