"""A web page that classifies a video with your own class names, zero-shot (built on Gradio).

    python tools/web_demo.py --cfg C.yaml [--checkpoint F] [--host 127.0.0.1] [--port 7860] \
        [--classes "a,b,c"] [--examples DIR_OR_VIDEO ...] [--compare-cfg C2.yaml --compare-checkpoint F2] \
        [--opts KEY VALUE ...]
    make web    # the model `make demo` trained, with the frame-averaging baseline in the Compare tab

Upload a video (or record one with the webcam), type the class names (comma-separated or one per line) or
fill in a shipped benchmark list, and get the probabilities as a bar chart and the clip with the prediction
drawn on it (the drawing of `tools/demo_net.py --output`). The Compare tab runs a second model
(--compare-cfg and/or --compare-checkpoint) on the same video, side by side. Every answer comes from
`slowfast.inference.VideoClassifier`, so it equals `VideoClassifier.predict` and `tools/run_net.py` testing.
The models are loaded once, at start; requests wait in a queue and --concurrency of them are served at once
(inference on one model runs one request at a time). A bad request (no file, not a video, empty or too many
class names, ...) gets a message in the page and the server goes on serving. Uploaded videos are deleted once
answered; annotated clips after an hour and when the server stops. The server never makes a public link and
sends no usage statistics; --host 0.0.0.0 makes it reachable from other machines.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from slowfast.errors import UserError, cli_main

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7860
MAX_EXAMPLES = 24
# Shipped class lists offered as buttons (keys of slowfast.datasets.class_lists.SHIPPED_CLASS_LISTS).
LIST_BUTTONS = {"k400": "Kinetics-400", "k600": "Kinetics-600", "ucf101": "UCF101", "hmdb51": "HMDB51",
                "k600_split1": "K600 split 1", "k600_split2": "K600 split 2", "k600_split3": "K600 split 3"}
ANSWER_AGE_S = 3600  # annotated clips are deleted this long after they were drawn


class WebRequestError(UserError, ValueError):
    """A request the page cannot answer (no video, a bad class list, ...); its message is shown in the page."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", dest="cfg_files", action="append", default=[], required=True,
                   help="Model config (repeatable), as tools/demo_net.py.")
    p.add_argument("--checkpoint", default="", help="Trained or averaged checkpoint; default: initial weights.")
    p.add_argument("--label", default="", help="Name of the model in the page (default: config and checkpoint file names).")
    p.add_argument("--compare-cfg", action="append", default=[],
                   help="Config of the second model of the Compare tab (default: --cfg); repeatable.")
    p.add_argument("--compare-checkpoint", default="", help="Checkpoint of the second model (default: initial weights).")
    p.add_argument("--compare-label", default="", help="Name of the second model in the page.")
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on (default %(default)s: this machine only).")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="Port to listen on (default %(default)s).")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--classes", default="", help='Class names filled in at start: "a,b,c" or one per line.')
    g.add_argument("--classes-file", default="", help="A file with the class names filled in at start, one per line.")
    p.add_argument("--examples", nargs="+", default=[], metavar="DIR_OR_VIDEO",
                   help=f"Example videos shown under the upload: files, or folders of videos (at most {MAX_EXAMPLES}).")
    p.add_argument("--top-k", type=int, default=5, help="Initial top-k in the page (default %(default)s).")
    p.add_argument("--max-classes", type=int, default=1000, help="Most class names a request may have (default %(default)s).")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="Largest video accepted, in MB (default %(default)s).")
    p.add_argument("--concurrency", type=int, default=1, help="Requests served at once; others wait in the queue (default %(default)s).")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="Config overrides KEY VALUE ... for both models; must come last.")
    return p


# -- the checks of one request (no Gradio needed) ----------------------------------------------------------------

def check_video(path: Optional[str], max_bytes: int) -> str:
    """`path` when it is a non-empty video file of at most `max_bytes`; WebRequestError otherwise."""
    from slowfast.datasets.prepare import VIDEO_EXTENSIONS

    if not path:
        raise WebRequestError("no video: upload one (or record one with the webcam) first")
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise WebRequestError(f"{name} is no longer on the server (an upload is deleted once answered): upload it again")
    ext = os.path.splitext(name)[1].lower()
    if ext not in VIDEO_EXTENSIONS:
        raise WebRequestError(f"{name} is not a video file ({ext or 'no extension'}); upload one of {', '.join(VIDEO_EXTENSIONS)}")
    size = os.path.getsize(path)
    if size == 0:
        raise WebRequestError(f"{name} is empty (0 bytes)")
    if size > max_bytes:
        raise WebRequestError(f"{name} is {size / 2**20:.1f} MB; this server accepts videos of at most {max_bytes / 2**20:g} MB")
    return path


def check_classes(text: Optional[str], max_classes: int) -> list[str]:
    """The class names typed in the page (separated by commas or line breaks): at least two, distinct, at most
    `max_classes`; WebRequestError otherwise."""
    from slowfast.engine.video_io import ClassifyError, check_class_names, split_class_text

    names = split_class_text(text or "")
    if not names:
        raise WebRequestError("no class names: type them comma-separated or one per line, or fill in a benchmark list")
    try:
        names = check_class_names(names, how=" (with one class its probability is always 100 %)")
    except ClassifyError as e:
        raise WebRequestError(str(e)) from None
    if len(names) > max_classes:
        raise WebRequestError(f"{len(names)} class names; this server accepts at most {max_classes}")
    return names


def check_requested_top_k(top_k: Any, num_classes: int) -> int:
    """`top_k` from the page as an int of at least 1, capped at `num_classes` (a larger one asks for every class,
    as in the Python API and `stdd-demo`); WebRequestError otherwise."""
    try:
        k = float(top_k)
    except (TypeError, ValueError):
        k = math.nan
    if isinstance(top_k, bool) or not math.isfinite(k) or k != int(k) or k < 1:
        raise WebRequestError(f"top-k must be a whole number of at least 1, got {top_k!r}")
    return min(int(k), num_classes)


# -- what the page does, without the page -----------------------------------------------------------------------

@dataclass
class ServedModel:
    """One loaded model behind the page. `lock` keeps one inference at a time on it: its text classifier is
    switched to each request's class list."""

    label: str
    classifier: Any  # slowfast.inference.VideoClassifier
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_model(cfg_files: Sequence[str], checkpoint: str = "", opts: Sequence[str] = (), label: str = "") -> ServedModel:
    from slowfast.inference import VideoClassifier

    if not label:
        name = os.path.basename(cfg_files[-1])
        label = f"{name} + {os.path.basename(checkpoint)}" if checkpoint else f"{name} (initial weights)"
    clf = VideoClassifier.from_config(list(cfg_files), checkpoint=checkpoint or None, opts=list(opts))
    return ServedModel(label, clf)


def _no_progress(fraction: float, desc: str = "") -> None:
    pass


class WebDemo:
    """Answers the page's requests: checks them, classifies with the served models, draws the answer on the
    clip (into `answer_dir`) and deletes the upload (a file under `upload_dir`, unless it is in `keep`)."""

    def __init__(self, models: Sequence[ServedModel], answer_dir: str, upload_dir: Optional[str] = None,
                 max_classes: int = 1000, max_upload_mb: float = 200.0):
        self.models = list(models)
        self.answer_dir, self.upload_dir = answer_dir, upload_dir
        self.max_classes, self.max_bytes = max_classes, int(max_upload_mb * 2**20)
        self.keep: set[str] = set()  # the example videos' copies, handed out again on each click

    def _request(self, video, classes_text, top_k) -> tuple[str, list[str], int]:
        path = check_video(video, self.max_bytes)
        classes = check_classes(classes_text, self.max_classes)
        return path, classes, check_requested_top_k(top_k, len(classes))

    def _answer(self, model: ServedModel, path: str, classes: list[str], k: int, progress: Callable,
                suffix: str = "_pred") -> tuple[dict, str]:
        from slowfast.engine.video_io import prediction_lines, write_annotated_video

        name = os.path.basename(path)
        progress(0.05, desc=f"{model.label}: decoding {name} and classifying it")
        with model.lock:
            pred = model.classifier.classify([path], classes, top_k=k)[0]
        if not pred.ok:  # the reason may name the server's copy of the upload: the user knows it by its name
            raise WebRequestError(f"{name} could not be read as a video: {pred.reason.replace(path, name)}")
        progress(0.8, desc=f"{model.label}: drawing the answer on the clip")
        folder = os.path.join(self.answer_dir, uuid.uuid4().hex)
        os.makedirs(folder)
        clip = os.path.join(folder, os.path.splitext(name)[0] + suffix + ".mp4")
        write_annotated_video(path, clip, prediction_lines(pred.topk))
        logger.info("%s: %s -> %s (%.1f %%)", model.label, name, pred.topk[0][0], 100 * pred.topk[0][1])
        return dict(pred.topk), clip

    def classify(self, video, classes_text, top_k, progress: Callable = _no_progress) -> tuple[dict, str]:
        """({class: probability} of the top-k, annotated clip) of the first model."""
        path, classes, k = self._request(video, classes_text, top_k)
        return self._answer(self.models[0], path, classes, k, progress)

    def compare(self, video, classes_text, top_k, progress: Callable = _no_progress) -> tuple[dict, str, dict, str]:
        """classify()'s answer of both models on the same video."""
        if len(self.models) < 2:
            raise WebRequestError("this server has one model; start it with --compare-cfg or --compare-checkpoint")
        path, classes, k = self._request(video, classes_text, top_k)
        first = self._answer(self.models[0], path, classes, k, progress, suffix="_pred_a")
        return first + self._answer(self.models[1], path, classes, k, progress, suffix="_pred_b")

    def forget_upload(self, video: Optional[str]) -> None:
        """Delete an uploaded video (and its folder when empty); files outside `upload_dir` are never touched."""
        if not video or not self.upload_dir:
            return
        path, root = os.path.realpath(video), os.path.realpath(self.upload_dir)
        if path in self.keep or not path.startswith(root + os.sep) or path.startswith(os.path.realpath(self.answer_dir) + os.sep):
            return
        with contextlib.suppress(FileNotFoundError):  # another request on the same upload may have deleted it
            os.remove(path)
        folder = os.path.dirname(path)
        if folder != root:
            with contextlib.suppress(OSError):  # not empty: an upload of another name has the same content
                os.rmdir(folder)


# -- the page --------------------------------------------------------------------------------------------------

def _gradio():
    """Gradio, imported on first use (only this command needs it), with its usage statistics off."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise UserError('the web demo needs Gradio: pip install -r requirements.txt (or pip install -e ".[web]")') from None
    return gradio


def _event(gr, demo: WebDemo, method: Callable) -> Callable:
    """`method` as a Gradio event function: a UserError becomes its message in the page, any other failure a short
    notice (its traceback goes to the server's log); the upload is deleted whatever the answer."""
    from slowfast.errors import one_line

    tracker = gr.Progress(track_tqdm=True)  # Gradio fills in a default of this type with the request's progress bar

    def run(video, classes_text, top_k, progress=tracker):
        try:
            return method(video, classes_text, top_k, progress)
        except UserError as e:  # the page shows the message as HTML, and file and class names come from the user
            raise gr.Error(html.escape(one_line(e), quote=False), duration=None, print_exception=False) from None
        except Exception:
            logger.exception("could not answer a request")
            raise gr.Error("the server failed on this request; its log has the details", duration=None,
                           print_exception=False) from None
        finally:
            demo.forget_upload(video)

    return run


def _class_list_text(names: Sequence[str]) -> str:
    return "\n".join(names) if len(names) > 8 else ", ".join(names)


def _request_panel(gr, demo: WebDemo, classes: Sequence[str], top_k: int, examples: Sequence[str], prefix: str):
    """The inputs of one tab: video (upload or webcam), class names with the shipped-list buttons, top-k, a button."""
    from slowfast.datasets.class_lists import shipped_classes

    video = gr.Video(label="Video", sources=["upload", "webcam"], include_audio=True, height=280, elem_id=f"{prefix}video")
    box = gr.Textbox(label="Class names (separated by commas or line breaks)", value=_class_list_text(classes), lines=4,
                     max_lines=12, placeholder="juggling balls, skateboarding, playing guitar", elem_id=f"{prefix}classes")
    gr.Markdown("Or fill in the classes of a benchmark (K600 split 1-3: the Kinetics-600 zero-shot test splits):")
    with gr.Row():
        for key, title in LIST_BUTTONS.items():
            gr.Button(title, size="sm", variant="secondary", min_width=50).click(
                lambda key=key: "\n".join(shipped_classes(key)), outputs=box, queue=False, api_visibility="private")
    k = gr.Number(label="top-k", value=top_k, precision=0, elem_id=f"{prefix}top-k")
    button = gr.Button("Compare" if prefix else "Classify", variant="primary", elem_id=f"{prefix}run")
    if examples:
        for path in examples:  # the copy Gradio makes of an example and hands out on every click
            demo.keep.add(os.path.realpath(video.move_resource_to_block_cache(path)))
        gr.Examples([[path] for path in examples], inputs=[video], label="Examples")
    return [video, box, k], button


def _answer_column(gr, label: str, prefix: str):
    with gr.Column():
        gr.Markdown(f"### {html.escape(label)}")
        probs = gr.Label(label="Probabilities", elem_id=f"{prefix}probabilities")
        clip = gr.Video(label="Annotated clip", interactive=False, height=280, elem_id=f"{prefix}annotated")
    return [probs, clip]


def build_page(demo: WebDemo, classes: Sequence[str] = (), top_k: int = 5, examples: Sequence[str] = ()):
    """The Gradio Blocks of the page: a Classify tab and, with two models, a Compare tab."""
    gr = _gradio()
    with gr.Blocks(title="STDD: classify a video", analytics_enabled=False, delete_cache=(600, ANSWER_AGE_S)) as page:
        gr.Markdown("## Classify a video with your own class names\nZero-shot: the probabilities are over the class "
                    "names you give (the softmax of the logit averaged over the clip's test views), as `tools/demo_net.py` computes them.")
        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column():
                    inputs, button = _request_panel(gr, demo, classes, top_k, examples, "")
                outputs = _answer_column(gr, demo.models[0].label, "")
            button.click(_event(gr, demo, demo.classify), inputs=inputs, outputs=outputs, api_name="classify",
                         concurrency_id="inference")
        if len(demo.models) > 1:
            with gr.Tab("Compare"):
                inputs, button = _request_panel(gr, demo, classes, top_k, examples, "compare-")
                with gr.Row():
                    outputs = _answer_column(gr, demo.models[0].label, "a-") + _answer_column(gr, demo.models[1].label, "b-")
                button.click(_event(gr, demo, demo.compare), inputs=inputs, outputs=outputs, api_name="compare",
                             concurrency_id="inference")
    return page


# -- the server ------------------------------------------------------------------------------------------------

@dataclass
class WebServer:
    """A running page: `url` to open, `close()` to stop it."""

    page: Any
    demo: WebDemo
    url: str

    def close(self) -> None:
        self.page.close(verbose=False)
        shutil.rmtree(self.demo.answer_dir, ignore_errors=True)

    def serve_forever(self) -> None:
        try:
            self.page.block_thread()
        finally:
            self.close()


def _startup_classes(args) -> list[str]:
    from slowfast.engine.video_io import ClassifyError, parse_classes

    if args.classes_file:
        names = parse_classes(classes_file=args.classes_file)
        if any("," in n for n in names):  # the page's box separates names by commas
            raise ClassifyError(f"--classes-file {args.classes_file}: a class name in the page cannot hold a comma: "
                                f"{next(n for n in names if ',' in n)!r}")
        return names
    if not args.classes:
        return []
    try:
        return check_classes(args.classes, args.max_classes)
    except WebRequestError as e:
        raise ClassifyError(f"--classes: {e}") from None


def _example_videos(paths: Sequence[str]) -> list[str]:
    from slowfast.engine.video_io import list_videos

    videos = list(dict.fromkeys(v for p in paths for v in list_videos(p)))
    if len(videos) > MAX_EXAMPLES:
        logger.warning("showing the first %d of %d example videos", MAX_EXAMPLES, len(videos))
    return videos[:MAX_EXAMPLES]


def _check_args(args) -> None:
    for flag, value, least in (("--max-classes", args.max_classes, 2), ("--concurrency", args.concurrency, 1),
                               ("--top-k", args.top_k, 1), ("--port", args.port, 1)):
        if value < least:
            raise UserError(f"{flag} must be at least {least}, got {value}")
    if not args.max_upload_mb > 0:
        raise UserError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")


def start(args: argparse.Namespace) -> WebServer:
    """Load the model(s) once, build the page and serve it in the background (`args` from build_parser)."""
    _check_args(args)
    classes, examples = _startup_classes(args), _example_videos(args.examples)
    models = [load_model(args.cfg_files, args.checkpoint, args.opts, args.label)]
    if args.compare_cfg or args.compare_checkpoint:
        models.append(load_model(args.compare_cfg or args.cfg_files, args.compare_checkpoint, args.opts, args.compare_label))
    gr = _gradio()
    cache = gr.Video().GRADIO_CACHE  # where Gradio keeps uploads and the files it serves
    os.makedirs(cache, exist_ok=True)
    demo = WebDemo(models, tempfile.mkdtemp(prefix="stdd-web-", dir=cache), upload_dir=cache,
                   max_classes=args.max_classes, max_upload_mb=args.max_upload_mb)
    page = build_page(demo, classes, min(args.top_k, len(classes)) if classes else args.top_k, examples)
    page.queue(default_concurrency_limit=args.concurrency)
    try:
        page.launch(server_name=args.host, server_port=args.port, share=False, prevent_thread_lock=True, quiet=True,
                    inbrowser=False, show_error=False, ssr_mode=False, max_file_size=int(args.max_upload_mb * 2**20))
    except OSError as e:
        shutil.rmtree(demo.answer_dir, ignore_errors=True)
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e}); choose another --port") from None
    return WebServer(page, demo, page.local_url)


@cli_main("stopped")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own requests to the page it starts
    server = start(args)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop cleans up as Ctrl+C does
    print(f"STDD web demo: {server.url}  (Ctrl+C stops it)", flush=True)
    server.serve_forever()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
