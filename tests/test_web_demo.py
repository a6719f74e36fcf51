"""The web page (`tools/web_demo.py`), served on 127.0.0.1 by the test: through Gradio's Python client its answers
equal `VideoClassifier.predict`, every bad request gets its message and the server goes on serving, uploads are
deleted once answered; in headless Chromium a user uploads a video, types the classes and reads the top class."""

import os
import shutil

import av
import httpx
import pytest
import torch
from browser import INSTALL_COMMAND, classify_in_browser, find_browser, free_port, open_browser, resources_elsewhere
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers import make_tiny_synthetic

from slowfast.cli import web_demo
from slowfast.inference import VideoClassifier

CLASSES = ["moving left", "moving right", "moving up", "moving down"]
TYPED = "moving left, moving right, moving up, moving down"
MAX_UPLOAD_MB = 0.25


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(dataset folder, tiny STDD config, the same model with frame averaging instead of STDD)."""
    root = tmp_path_factory.mktemp("synthetic")
    stdd = make_tiny_synthetic(root, tmp_path_factory.mktemp("out"))
    baseline = root / "tiny_baseline.yaml"
    baseline.write_text(f"_BASE_: {stdd}\nMODEL:\n  TEMPORAL_MODELING_TYPE: None\n")
    return root, stdd, baseline


@pytest.fixture(scope="module")
def reference(synthetic):
    """The two models loaded straight through VideoClassifier, as a user of the Python API would."""
    return VideoClassifier.from_config(str(synthetic[1])), VideoClassifier.from_config(str(synthetic[2]))


@pytest.fixture(scope="module")
def server(synthetic, tmp_path_factory):
    root, stdd, baseline = synthetic
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        args = web_demo.build_parser().parse_args([
            "--cfg", str(stdd), "--compare-cfg", str(baseline), "--port", str(free_port()),
            "--max-upload-mb", str(MAX_UPLOAD_MB), "--examples", str(root / "videos" / "test")])
        srv = web_demo.start(args)
        try:
            yield srv
        finally:
            srv.close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def a_video(synthetic, tmp_path, name="clip.mp4", source="moving_left_0000.mp4"):
    """A synthetic test video copied under a name of this test's own (so that its upload can be looked for)."""
    dst = tmp_path / name
    shutil.copy(synthetic[0] / "videos" / "test" / source, dst)
    return str(dst)


def shown(probabilities: dict) -> list:
    """[(class, probability), ...] as the page's bar chart (Gradio's Label) holds them."""
    return [(c["label"], c["confidence"]) for c in probabilities["confidences"]]


def assert_same_answer(got: list, want: list):
    assert [n for n, _ in got] == [n for n, _ in want]
    assert torch.allclose(torch.tensor([p for _, p in got]), torch.tensor([p for _, p in want]), atol=1e-5)


def frame_count(path: str) -> int:
    with av.open(path) as c:
        return sum(1 for _ in c.decode(video=0))


def files_named(folder: str, name: str) -> list:
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if f == name]


@pytest.mark.slow  # a served page (about 10 s to start on a 2-core CPU)
def test_the_answer_equals_video_classifier_predict_with_the_clip_drawn(synthetic, reference, client, tmp_path):
    video = a_video(synthetic, tmp_path)
    probabilities, clip = client.predict(handle_file(video), TYPED, 3, api_name="/classify")
    want = reference[0].predict(video, CLASSES, top_k=3)
    assert probabilities["label"] == want[0][0]
    assert_same_answer(shown(probabilities), want)
    assert frame_count(clip) == frame_count(video) == 8


@pytest.mark.slow
def test_the_compare_tab_answers_with_each_model_side_by_side(synthetic, reference, client, tmp_path):
    video = a_video(synthetic, tmp_path, source="moving_up_0000.mp4")
    probs_a, clip_a, probs_b, clip_b = client.predict(handle_file(video), TYPED, 4, api_name="/compare")
    want_a, want_b = (clf.predict(video, CLASSES, top_k=4) for clf in reference)
    assert_same_answer(shown(probs_a), want_a)
    assert_same_answer(shown(probs_b), want_b)
    assert dict(want_a) != pytest.approx(dict(want_b), abs=1e-4)  # two models, not one asked twice
    assert os.path.basename(clip_a) != os.path.basename(clip_b) and frame_count(clip_a) == frame_count(clip_b) == 8


@pytest.mark.slow
def test_an_upload_is_deleted_once_answered(synthetic, server, client, tmp_path):
    video = a_video(synthetic, tmp_path, name="delete_me.mp4")
    client.predict(handle_file(video), TYPED, 2, api_name="/classify")
    assert files_named(server.demo.upload_dir, "delete_me.mp4") == []
    assert len(files_named(server.demo.answer_dir, "delete_me_pred.mp4")) == 1  # the answer is still served


BAD_REQUESTS = {
    "no file": (None, TYPED, 3, "no video: upload one"),
    "not a video": ("notes.txt", TYPED, 3, "notes.txt is not a video file"),
    "unreadable video": ("broken.mp4", TYPED, 3, "broken.mp4 could not be read as a video"),
    "zero-byte video": ("empty.mp4", TYPED, 3, r"empty.mp4 is empty \(0 bytes\)"),
    "empty class list": ("clip.mp4", " ,\n ,", 3, "no class names"),
    "one class": ("clip.mp4", "moving left", 1, "give at least two class names"),
    "duplicate classes": ("clip.mp4", "moving left, moving up, moving left", 2, "repeated: moving left"),
    "too many classes": ("clip.mp4", ", ".join(f"class {i}" for i in range(1001)), 3, "1001 class names; this server accepts at most 1000"),
    "top-k of zero": ("clip.mp4", TYPED, 0, "top-k must be a whole number of at least 1"),
}


def a_bad_file(synthetic, tmp_path, name):
    if name == "notes.txt":
        (tmp_path / name).write_text("not a video\n")
    elif name == "broken.mp4":
        (tmp_path / name).write_bytes(b"\x00garbage" * 500)
    elif name == "empty.mp4":
        (tmp_path / name).write_bytes(b"")
    else:
        return a_video(synthetic, tmp_path, name)
    return str(tmp_path / name)


@pytest.mark.slow
@pytest.mark.parametrize("top_k,expected", [(5, 4), (4, 4), (2, 2), (2.0, 2), ("3", 3), (0, None), (-1, None), (1.5, None),
                                            (float("nan"), None), (float("inf"), None), ("two", None), (True, None)])
def test_the_page_follows_the_api_rule_for_top_k(top_k, expected):
    """As in VideoClassifier.predict and stdd-demo: a whole number of at least 1; more than there are classes asks
    for every class."""
    from slowfast.cli.web_demo import WebRequestError, check_requested_top_k

    if expected is None:
        with pytest.raises(WebRequestError, match="top-k must be a whole number of at least 1"):
            check_requested_top_k(top_k, 4)
    else:
        assert check_requested_top_k(top_k, 4) == expected


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_gets_its_message_and_the_server_goes_on(synthetic, server, client, tmp_path, case):
    name, classes, top_k, message = BAD_REQUESTS[case]
    video = a_bad_file(synthetic, tmp_path, name) if name else None
    with pytest.raises(AppError, match=message) as err:
        client.predict(handle_file(video) if video else None, classes, top_k, api_name="/classify")
    assert "Traceback" not in str(err.value) and str(tmp_path) not in str(err.value)
    if name:
        assert files_named(server.demo.upload_dir, name) == []
    probabilities, _ = client.predict(handle_file(a_video(synthetic, tmp_path, "next.mp4")), TYPED, 2, api_name="/classify")
    assert probabilities["label"] in CLASSES


@pytest.mark.slow
def test_an_upload_over_the_size_limit_is_refused_and_the_server_goes_on(synthetic, server, client, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(int(MAX_UPLOAD_MB * 2**20) + 1))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client (as the page) checks first
        client.predict(handle_file(str(big)), TYPED, 2, api_name="/classify")
    with open(big, "rb") as f:  # and the server refuses what gets past such a check
        r = httpx.post(server.url.rstrip("/") + "/gradio_api/upload", files={"files": ("big.mp4", f)}, timeout=600)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    assert files_named(server.demo.upload_dir, "big.mp4") == []
    probabilities, _ = client.predict(handle_file(a_video(synthetic, tmp_path)), TYPED, 2, api_name="/classify")
    assert probabilities["label"] in CLASSES


@pytest.mark.slow
def test_answering_never_deletes_an_example_video_or_a_file_outside_the_upload_folder(synthetic, server, tmp_path):
    assert len(server.demo.keep) == 4 and all(os.path.isfile(p) for p in server.demo.keep)
    for path in sorted(server.demo.keep)[:1] + [a_video(synthetic, tmp_path)]:
        server.demo.forget_upload(path)
        assert os.path.isfile(path)


@pytest.mark.parametrize("text, names", [
    ("a, b,c", ["a", "b", "c"]),
    ("a\nb\n\nc d", ["a", "b", "c d"]),
    ("a,\nb,\n", ["a", "b"]),
    ("  a  \n", ["a"]),
    (" , \n", []),
])
def test_class_names_are_comma_separated_or_one_per_line(text, names):
    from slowfast.engine.video_io import split_class_text

    assert split_class_text(text) == names


@pytest.mark.slow
@pytest.mark.skipif(find_browser() is None, reason=f"needs Chromium and its driver: {INSTALL_COMMAND}")
def test_a_user_classifies_a_video_in_headless_chromium(synthetic, reference, server, tmp_path):
    video = a_video(synthetic, tmp_path, source="moving_right_0000.mp4")
    screenshot = tmp_path / "page.png"
    driver = open_browser()
    try:
        top = classify_in_browser(driver, server.url, video, TYPED, 3, str(screenshot))
        elsewhere = resources_elsewhere(driver, server.url)
    finally:
        driver.quit()
    assert top == reference[0].predict(video, CLASSES, top_k=3)[0][0]
    from PIL import Image

    with Image.open(screenshot) as im:
        assert im.format == "PNG" and im.width >= 1000
    assert elsewhere == []  # the page loads nothing from the internet
