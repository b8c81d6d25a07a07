"""The explorer's HTTP API driven as a hostile client would (gradio_client over 127.0.0.1): the "compare with"
box never imports or calls code, never opens a file outside --models-dir, and the server keeps serving."""

import sys

import pytest

pytest.importorskip("gradio", reason="the explorer needs the [view] extra (gradio)")
from gradio_client import Client  # noqa: E402
from net import free_port  # noqa: E402

pytestmark = pytest.mark.xdist_group("view")  # one worker: the explorer tests share the int8 checkpoint


HOSTILE = ["os:getpid", "this:x", "os:abort", "hf:/etc", "/etc/passwd.safetensors", "../../x.safetensors"]


@pytest.fixture(scope="module")
def client(meter_nyu, nyu_dir):
    from depthscope.view import app, serve

    demo = app([meter_nyu], nyu_dir)
    port = free_port()
    serve(demo, port=port, block=False)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


def test_the_compare_box_refuses_code_and_files_outside_and_keeps_serving(client):
    assert "this" not in sys.modules  # `import this` prints the Zen of Python: the tell-tale of an import
    for text in HOSTILE:
        status = client.predict(text, api_name="/on_compare")[-1]
        assert status.startswith("⚠ the explorer loads only registered models"), (text, status)
        assert repr(text) in status and "--models-dir" in status
    assert "this" not in sys.modules  # nothing was imported
    # os:abort would have killed this process; the server still answers, and a registered name still loads
    assert client.predict("meter-xxs-nyu", api_name="/on_compare")[-1].endswith(
        "is already shown; compare with another model or checkpoint"
    )
    assert client.predict("", api_name="/on_compare")[-1] == "showing meter-xxs-nyu"


def test_a_checkpoint_is_loaded_only_from_the_models_dir(meter_nyu, nyu_dir, tmp_path, int8_checkpoint):
    from depthscope.errors import InputError
    from depthscope.view import Explorer

    elsewhere = Explorer([meter_nyu], nyu_dir, models_dir=[tmp_path])
    with pytest.raises(InputError, match="only registered models"):
        elsewhere.compare_with(str(int8_checkpoint))
    (tmp_path / "link.safetensors").symlink_to(int8_checkpoint)  # a link inside leading out is still outside
    with pytest.raises(InputError, match="only registered models"):
        elsewhere.compare_with(str(tmp_path / "link.safetensors"))
    inside = Explorer([meter_nyu], nyu_dir, models_dir=[int8_checkpoint.parent])
    assert inside.compare_with(str(int8_checkpoint)) == ["meter-xxs-nyu", "meter-xxs-nyu+int8"]


def test_a_page_never_makes_the_server_download_a_checkpoint(meter_nyu, tmp_path, monkeypatch):
    from depthscope.errors import InputError
    from depthscope.models import weights
    from depthscope.view import Explorer

    ex = Explorer([meter_nyu])
    monkeypatch.setenv("DEPTHSCOPE_WEIGHTS", str(tmp_path))  # nothing here, nothing cached
    monkeypatch.setenv("DEPTHSCOPE_CACHE", str(tmp_path / "cache"))

    def no_download(*args, **kwargs):
        raise AssertionError("the page made the server download a checkpoint")

    monkeypatch.setattr(weights, "_download", no_download)
    with pytest.raises(InputError, match="meter-xxs-kitti: its checkpoint is not on this machine"):
        ex.compare_with("meter-xxs-kitti")
    assert list(ex.by_name) == ["meter-xxs-nyu"]


def test_auth_is_asked_and_a_public_host_is_warned_about(meter_nyu, capsys):
    from gradio_client.exceptions import AppError  # noqa: F401  (the client's own errors module exists)

    from depthscope.errors import InputError
    from depthscope.view import app, serve
    from depthscope.view.web import is_loopback, parse_auth

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.5.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("myhost")
    assert parse_auth("ann:secret") == ("ann", "secret") and parse_auth(None) is None
    for bad in ("ann", ":x", "ann:"):
        with pytest.raises(InputError, match="--auth takes USER:PASSWORD"):
            parse_auth(bad)
    demo = app([meter_nyu])
    port = free_port()
    serve(demo, host="127.0.0.1", port=port, block=False, auth=("ann", "secret"))
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(Exception):  # noqa: B017  (the client refuses to connect without the login)
            Client(url, verbose=False)
        with pytest.raises(Exception):  # noqa: B017
            Client(url, auth=("ann", "wrong"), verbose=False)
        ok = Client(url, auth=("ann", "secret"), verbose=False)
        assert ok.predict("os:getpid", api_name="/on_compare")[-1].startswith("⚠ the explorer loads only")
    finally:
        demo.close()
