"""The upload page's camera, in Debian's chromium with a fake camera.

Chromium's ``--use-fake-device-for-media-stream`` supplies a synthetic 640x480 video and
``--use-fake-ui-for-media-stream`` accepts the permission prompt, so "Use camera" → "Take
photo" → "Estimate ages" runs end to end with no real device. The site runs in-process
(pytest-django's ``live_server``; 127.0.0.1 is a secure context) and the broker is replaced
by the ``enqueued`` fixture: this checks the capture and the upload, not inference, which
test_flows.py covers. Two more pages check the fallbacks: permission refused, and a browser
without ``getUserMedia``; the last test sends several files and watches the batch page update
its statuses by itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from predictor.models import Prediction
from tests.browser.conftest import CHROMIUM_ARGS, PHONE, csp_watched_context, wait_for_js

FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def camera_browser(chromium_path) -> Iterator:
    import os

    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS + FAKE_CAMERA
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def phone_page(camera_browser):
    with csp_watched_context(
        camera_browser, timeout_ms=30_000, viewport=PHONE, locale="en-GB"
    ) as context:
        yield context.new_page()


def test_take_a_photo_with_the_camera_and_upload_it(live_server, phone_page, enqueued, shots):
    page = phone_page
    page.goto(live_server.url + "/")
    open_button = page.locator("#camera-open")
    open_button.wait_for(state="visible")
    assert page.get_attribute("#camera-video", "aria-label")
    open_button.click()
    wait_for_js(page, "document.getElementById('camera-video').videoWidth > 0")
    shots.take(page, "20-camera-preview-phone")
    page.click("#camera-take")
    # The frame became a JPEG in the file input, the preview shows it, the camera is off.
    wait_for_js(page, "document.querySelector('#upload-form input[type=file]').files.length === 1")
    name = page.evaluate("document.querySelector('#upload-form input[type=file]').files[0].name")
    kind = page.evaluate("document.querySelector('#upload-form input[type=file]').files[0].type")
    assert (name, kind) == ("camera.jpg", "image/jpeg")
    assert page.is_visible("#camera-photo") and page.get_attribute("#camera-photo", "alt")
    assert page.evaluate("document.getElementById('camera-video').srcObject") is None
    assert page.is_hidden("#camera-panel")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the upload page is {overflow}px wider than a phone screen"
    shots.take(page, "21-camera-photo-taken-phone")
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/$"))
    prediction = Prediction.objects.get()
    assert prediction.original_name == "camera.jpg"
    assert (prediction.width, prediction.height) == (640, 480)  # chromium's fake camera
    assert enqueued == [str(prediction.pk)]


def test_a_refused_camera_says_so_and_keeps_the_file_picker(live_server, phone_page):
    page = phone_page
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('denied', 'NotAllowedError'));"
    )
    page.goto(live_server.url + "/")
    page.click("#camera-open")
    wait_for_js(page, "document.getElementById('camera-message').textContent.length > 0")
    message = page.inner_text("#camera-message")
    assert "not allowed" in message and "photo file" in message, message
    assert page.is_hidden("#camera-panel")
    assert page.is_visible("#upload-form input[type=file]")


def test_no_camera_button_without_getusermedia(live_server, phone_page):
    page = phone_page
    page.add_init_script("Object.defineProperty(navigator, 'mediaDevices', {value: undefined});")
    page.goto(live_server.url + "/")
    page.wait_for_load_state("load")
    assert page.is_hidden("#camera")
    assert page.is_visible("#upload-form input[type=file]")


def test_several_files_open_a_batch_page_that_updates_itself(
    live_server, phone_page, enqueued, shots, tmp_path
):
    from PIL import Image

    from predictor.models import Face

    paths = []
    for index in range(2):
        path = tmp_path / f"photo-{index}.jpg"
        Image.new("RGB", (120, 90), (40 * index, 90, 150)).save(path)
        paths.append(str(path))
    page = phone_page
    page.goto(live_server.url + "/")
    page.set_input_files("#upload-form input[type=file]", paths)
    assert "2 photos" in page.inner_text("#chosen-file")
    assert page.locator("#previews img").count() == 2  # a preview of each before sending
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/batch/[0-9a-f-]{36}/$"))
    assert page.locator("#batch-list .batch-card").count() == 2
    # A real progress bar: none of the two finished yet.
    assert page.locator("#batch-progress").get_attribute("max") == "2"
    assert page.eval_on_selector("#batch-progress", "bar => bar.value") == 0
    # The worker is simulated: finish both photos, and the page picks it up by itself.
    for prediction in Prediction.objects.all():
        prediction.status = Prediction.Status.SUCCEEDED
        prediction.save()
        Face.objects.create(
            prediction=prediction, index=0, left=1, top=1, right=40, bottom=40, age=33.4, age_std=3
        )
    wait_for_js(
        page,
        "[...document.querySelectorAll('.batch-status')]"
        ".every(el => el.dataset.status === 'succeeded')",
        timeout_ms=20_000,
    )
    assert "2 of 2 photos finished" in page.inner_text("#batch-summary")
    assert page.eval_on_selector("#batch-progress", "bar => bar.value") == 2
    # Each card carries the same headline as the result page (no interval stored here).
    assert page.locator("#batch-list .headlines li").all_inner_texts() == ["1 about 33"] * 2
    shots.take(page, "22-batch-page-phone")


def open_result_page(page, base_url: str, tmp_path) -> list[str]:
    """Upload a plain photo through the form and land on its result page; returns the list,
    filled as the page goes on, of the URLs of the result page's requests to the API."""
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (120, 90), (90, 120, 150)).save(path)
    asked: list[str] = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if "distribution=1" in request.url else 0,
    )
    page.goto(base_url + "/")
    page.set_input_files("#upload-form input[type=file]", str(path))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/$"))
    return asked


def until(page, check, seconds: float) -> None:
    """Let the page run until ``check()`` is true or ``seconds`` have passed."""
    for _ in range(round(10 * seconds)):
        if check():
            return
        page.wait_for_timeout(100)


def test_the_result_page_waits_on_the_server_until_the_photo_is_finished(
    live_server, phone_page, enqueued, tmp_path
):
    """After its first request, the result page asks with ?wait=3: the server holds each
    request until the photo is finished, so no request is needed to see it finish, and the
    faces show from the held request's answer."""
    from predictor.models import Face

    page = phone_page
    asked = open_result_page(page, live_server.url, tmp_path)
    page.wait_for_selector("#status.status-queued", state="attached")
    assert "Waiting in the queue" in page.inner_text("#status")
    until(page, lambda: any("wait=3" in url for url in asked), 10)
    assert any("wait=3" in url for url in asked), asked
    # Past the first, every request of the page waited on the server; none was plain, as a
    # polling loop's would be.
    before = list(asked)
    assert "wait=" not in before[0] and all("wait=3" in url for url in before[1:]), before
    # The worker is simulated: the photo finishes while a request is held.
    prediction = Prediction.objects.get()
    Face.objects.create(
        prediction=prediction, index=0, left=10, top=10, right=60, bottom=60, age=41.6, age_std=4
    )
    prediction.status = Prediction.Status.SUCCEEDED
    prediction.save()
    label = page.locator("#photo-frame .face-box .face-label-age").first
    label.wait_for(state="attached", timeout=20_000)
    assert label.text_content() == "about 42"
    # The finish came from a held request: no plain one was sent after the first, except the
    # first request of the page once it reloaded itself with the faces in (the last one).
    page.wait_for_load_state("load")
    plain = [index for index, url in enumerate(asked) if "wait=" not in url]
    assert plain[0] == 0 and plain[1:] in ([], [len(asked) - 1]), asked


# document.hidden, made switchable by the test (headless chromium's tabs are never hidden):
# window.faceageTestHidden = true hides the page (the script reads document.hidden each time
# it asks; no visibilitychange event is needed).
HIDDEN_SWITCH = """
Object.defineProperty(document, "hidden", {
  configurable: true, get: () => window.faceageTestHidden === true,
});
"""


def test_a_result_page_out_of_sight_asks_without_holding_a_wait(
    live_server, phone_page, enqueued, tmp_path
):
    """A forgotten tab holds none of the server's waits: out of sight the page asks without
    ?wait=, on its growing pause; back in sight it waits on the server again."""
    page = phone_page
    page.add_init_script(HIDDEN_SWITCH)
    asked = open_result_page(page, live_server.url, tmp_path)
    page.evaluate("window.faceageTestHidden = true")
    count = len(asked)
    # Three requests after hiding (the one held when it was hidden answers within 3 s).
    until(page, lambda: len(asked) >= count + 3, 15)
    hidden = asked[count + 1 : count + 3]
    assert len(hidden) == 2 and not any("wait=" in url for url in hidden), asked
    page.evaluate("window.faceageTestHidden = false")
    count = len(asked)
    until(page, lambda: any("wait=3" in url for url in asked[count:]), 10)
    assert any("wait=3" in url for url in asked[count:]), asked


PASTE_A_PHOTO = """async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 160; canvas.height = 120;
  const context = canvas.getContext("2d");
  context.fillStyle = "#5a7"; context.fillRect(0, 0, 160, 120);
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], "image.png", { type: "image/png" }));
  document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
}"""


# Each change of the upload's progress text, with the bar's value and maximum then, kept in
# sessionStorage: the page is gone once the upload lands on its result.
RECORD_UPLOAD_PROGRESS = """() => {
  const bar = document.querySelector('#upload-progress-bar');
  const text = document.querySelector('#upload-progress-text');
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem('uploadProgress') || '[]');
    seen.push([bar.value, bar.max, text.textContent]);
    sessionStorage.setItem('uploadProgress', JSON.stringify(seen));
  }).observe(text, { childList: true, characterData: true, subtree: true });
}"""


def test_a_pasted_photo_is_previewed_and_uploaded_with_a_progress_bar(
    live_server, phone_page, enqueued, shots
):
    page = phone_page
    page.goto(live_server.url + "/")
    page.evaluate(PASTE_A_PHOTO)  # what Ctrl+V of a copied image does
    assert page.inner_text("#chosen-file") == "Chosen: pasted-1.png"
    assert page.locator("#previews img").count() == 1
    shots.take(page, "23-pasted-photo-phone")
    # Enter or Space on the focused drop zone opens the file picker (the input is clicked;
    # whether chromium then shows its dialog to a headless page is up to chromium).
    page.evaluate(
        "() => { window.pickerClicks = 0;"
        " document.querySelector('#upload-form input[type=file]').addEventListener('click',"
        " (event) => { event.preventDefault(); window.pickerClicks += 1; }); }"
    )
    page.focus("#drop-zone")
    page.keyboard.press("Enter")
    page.keyboard.press(" ")
    assert page.evaluate("window.pickerClicks") == 2
    # Two photos of someone else's wait in the queue already.
    ahead = [Prediction.objects.create(original_name=f"ahead-{n}.jpg") for n in range(2)]
    # What the bar shows while the photo is sent, kept where the next page can read it.
    page.evaluate(RECORD_UPLOAD_PROGRESS)
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/$"))
    prediction = Prediction.objects.exclude(pk__in=[p.pk for p in ahead]).get()
    assert prediction.original_name == "pasted-1.png" and enqueued == [str(prediction.pk)]
    seen = page.evaluate("JSON.parse(sessionStorage.getItem('uploadProgress') || '[]')")
    assert seen, "the upload's progress bar never showed"
    values = [value for value, _, _ in seen]
    assert values == sorted(values) and seen[-1][0] == seen[-1][1] > 0  # bytes: all sent
    assert seen[-1][2] == "Sent. Waiting for the server…"
    # While it waits: a spinner, and how many photos are ahead of it.
    page.wait_for_selector("#status .spinner")
    wait_for_js(page, "document.querySelector('#status').textContent.includes('ahead')")
    status = page.inner_text("#status")
    assert "Waiting in the queue" in status and "2 photos are ahead of yours." in status


def test_a_bare_refusal_of_the_upload_is_explained_and_the_page_stays(
    live_server, phone_page, enqueued
):
    """A proxy in front of the site may refuse a large upload with a 413 and no body; the
    page says what to do, instead of turning blank, and the photo can be sent again."""
    page = phone_page
    page.goto(live_server.url + "/")
    # First a bare refusal, then nginx's own (deploy/nginx.conf): an HTML page, not ours.
    answers = [
        ("", "text/plain"),
        (
            "<html><head><title>413 Request Entity Too Large</title></head><body>"
            "<center><h1>413 Request Entity Too Large</h1></center><hr>"
            "<center>nginx</center></body></html>",
            "text/html",
        ),
    ]
    refusals = []

    def refuse(route):
        if route.request.method == "POST":
            body, kind = answers[len(refusals)]
            refusals.append(route.request.url)
            route.fulfill(status=413, body=body, headers={"Content-Type": kind})
        else:
            route.continue_()

    page.route(live_server.url + "/", refuse)
    page.evaluate(PASTE_A_PHOTO)
    for tries in (1, 2):
        page.evaluate("document.querySelector('#chosen-file').textContent = ''")
        page.click("#upload-button")
        wait_for_js(
            page, "document.querySelector('#chosen-file').textContent.includes('too large')"
        )
        assert len(refusals) == tries and page.is_enabled("#upload-button")
        assert page.is_hidden("#upload-progress") and page.locator("#drop-zone").count() == 1
    assert not enqueued
