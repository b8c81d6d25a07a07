"""``depthscope view`` driven in a real browser (headless Chromium, Selenium, the app on 127.0.0.1): click a
pixel, drag a box, upload a text file; every number the page shows is checked against ``depthscope.explain``
run here on the same image and target."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from net import free_port

import depthscope as ds

pytest.importorskip("gradio", reason="the explorer needs the [view] extra (gradio)")


pytestmark = pytest.mark.xdist_group("view")  # one worker: the explorer tests share the int8 checkpoint


@pytest.fixture(scope="module")
def served(meter_nyu, nyu_dir):
    from depthscope.view import app, serve

    demo = app([meter_nyu], nyu_dir)
    port = free_port()
    serve(demo, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", demo
    demo.close()


@pytest.fixture(scope="module")
def url(served):
    return served[0]


def wait(driver, condition, timeout=90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))


def stats(driver) -> dict:
    text = driver.find_element("css selector", "#stats textarea").get_attribute("value")
    return json.loads(text) if text.strip() else {}


def depth_image(driver):
    img = wait(driver, lambda d: (d.find_elements("css selector", "#depth_view img") or [None])[0])
    wait(driver, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img))
    return img


def offset(driver, img, y: int, x: int) -> tuple[float, float]:
    """Selenium's offset from the element's centre that lands on image pixel (y, x) of the displayed PNG."""
    nw, nh = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    r = img.rect
    return (x + 0.5) * r["width"] / nw - r["width"] / 2, (y + 0.5) * r["height"] / nh - r["height"] / 2


def target_of(driver) -> str:
    return stats(driver).get("models", {}).get("meter-xxs-nyu", {}).get("target", "")


def expected(meter_nyu, image, target):
    a = ds.explain(meter_nyu, image, "saliency", target=target)["saliency"].magnitude[0]
    with torch.no_grad():
        depth = meter_nyu(image[None])[0, 0]
    return a, depth


def check_panel(driver, meter_nyu, image, target):
    shown = stats(driver)["models"]["meter-xxs-nyu"]
    a, depth = expected(meter_nyu, image, target)
    kind, _, arg = target.partition(":")
    v = [int(t) for t in arg.split(",")]
    region = depth[v[0], v[1]] if kind == "pixel" else depth[v[0] : v[2], v[1] : v[3]].mean()
    assert shown["target_depth_m"] == pytest.approx(float(region), rel=1e-5)
    assert shown["maps"]["saliency"]["sum"] == pytest.approx(float(a.sum()), rel=1e-4)
    assert shown["maps"]["saliency"]["max"] == pytest.approx(float(a.max()), rel=1e-4)
    assert shown["command"].startswith("depthscope explain --model meter-xxs-nyu --image ")
    assert f"--target {target}" in shown["command"]


def test_click_drag_and_bad_upload_in_chromium(url, browser, meter_nyu, nyu, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.set_window_size(1400, 1400)
    browser.get(url)
    img = depth_image(browser)
    image = nyu[0].image

    # 1. click a pixel: a saliency map of that pixel's depth
    ox, oy = offset(browser, img, 200, 300)
    ActionChains(browser).move_to_element_with_offset(img, ox, oy).click().perform()
    wait(browser, lambda d: target_of(d).startswith("pixel:"))
    y, x = (int(v) for v in target_of(browser).removeprefix("pixel:").split(","))
    assert abs(y - 200) <= 2 and abs(x - 300) <= 2  # the displayed image is scaled: a pixel or two of rounding
    check_panel(browser, meter_nyu, image, f"pixel:{y},{x}")

    # 2. drag a box on the depth map
    ox0, oy0 = offset(browser, img, 100, 150)
    ox1, oy1 = offset(browser, img, 260, 400)
    ActionChains(browser).move_to_element_with_offset(img, ox0, oy0).click_and_hold().move_by_offset(
        ox1 - ox0, oy1 - oy0
    ).release().perform()
    wait(browser, lambda d: target_of(d).startswith("box:"))
    box = [int(v) for v in target_of(browser).removeprefix("box:").split(",")]
    assert all(abs(a - b) <= 3 for a, b in zip(box, [100, 150, 261, 401], strict=True)), box
    check_panel(browser, meter_nyu, image, target_of(browser))

    # 3. a text file is refused in the page; the server keeps serving and the next click works
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    browser.find_element("css selector", "#upload input[type=file]").send_keys(str(bad))
    wait(browser, lambda d: "not a readable image" in d.find_element("css selector", "#status").text)
    assert "notes.txt" in browser.find_element("css selector", "#status").text
    ox, oy = offset(browser, img, 50, 60)
    ActionChains(browser).move_to_element_with_offset(img, ox, oy).click().perform()
    wait(browser, lambda d: target_of(d).startswith("pixel:") and target_of(d) != f"pixel:{y},{x}")
    y2, x2 = (int(v) for v in target_of(browser).removeprefix("pixel:").split(","))
    assert abs(y2 - 50) <= 2 and abs(x2 - 60) <= 2
    check_panel(browser, meter_nyu, image, f"pixel:{y2},{x2}")

    # offline: every resource the page loaded came from the app itself
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert [r for r in resources if not r.startswith(url.rstrip("/"))] == []
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height)
    browser.save_screenshot(str(tmp_path / "view.png"))
    if os.environ.get("DEPTHSCOPE_SCREENSHOTS"):  # how docs/view.jpg is made
        shutil.copy(tmp_path / "view.png", Path(os.environ["DEPTHSCOPE_SCREENSHOTS"]) / "view.png")
    assert (tmp_path / "view.png").stat().st_size > 50_000


def test_cancel_stops_long_work_and_the_page_keeps_working(served, browser, meter_nyu, nyu):
    """Three slow maps of the mean depth, Cancel during the first: the panel never appears, and the next click
    gives its map (the server stopped before the next map instead of finishing all three)."""
    import time

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, demo = served
    browser.get(url)
    img = depth_image(browser)

    def toggle(group: str, name: str) -> None:
        browser.find_element(By.XPATH, f"//*[@id='{group}']//label[.//span[text()='{name}']]").click()

    for name in ("saliency", "smoothgrad", "integrated_gradients", "occlusion"):
        toggle("methods", name)  # saliency off, the three slow ones on
    browser.find_element(By.CSS_SELECTOR, "#options textarea").send_keys(
        "smoothgrad.n_samples=80\nintegrated_gradients.n_steps=80\nintegrated_gradients.tolerance=null\nocclusion.window=8"  # occlusion: 18,921 windows
    )
    toggle("kind", "mean")
    browser.find_element(By.ID, "explain_btn").click()
    wait(browser, lambda d: demo.busy())  # the handler is computing its first map (smoothgrad, 80 passes)
    time.sleep(0.5)
    browser.find_element(By.ID, "cancel_btn").click()
    wait(browser, lambda d: "cancelled" in d.find_element(By.ID, "status").text)
    for name in ("smoothgrad", "integrated_gradients", "occlusion", "saliency"):
        toggle("methods", name)
    browser.find_element(By.CSS_SELECTOR, "#options textarea").clear()
    ox, oy = offset(browser, img, 300, 200)
    ActionChains(browser).move_to_element_with_offset(img, ox, oy).click().perform()
    wait(browser, lambda d: target_of(d).startswith("pixel:"))
    shown = stats(browser)["models"]["meter-xxs-nyu"]
    assert list(shown["maps"]) == ["saliency"]  # the cancelled mean-target panel never replaced it
    y, x = (int(v) for v in shown["target"].removeprefix("pixel:").split(","))
    check_panel(browser, meter_nyu, nyu[0].image, f"pixel:{y},{x}")
    # the cancelled handler itself stopped at its next map: the server is idle long before the 18,921 occlusion
    # forwards it would otherwise still be running (minutes)
    wait(browser, lambda d: not demo.busy(), timeout=60)
