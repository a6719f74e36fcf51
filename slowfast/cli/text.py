"""`stdd-askg`, `stdd-xprompt`, `stdd-text-features`: parsing and `main(argv)` (the scripts under `utils/`
forward here).

Exit status: 0 all classes done, 1 some classes failed (the rest is saved; run again to retry them),
2 bad input or a failure every request would repeat (bad key, unknown model or URL), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

from slowfast.errors import UserError, cli_main
from slowfast.text import llm_instructions

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextCommandError(UserError):
    """A text command stopped by its input or by the LLM service (exit status 2; the API key is never shown)."""

    exit_code = 2


@contextmanager
def _logging(quiet: bool) -> Iterator[None]:
    """Log slowfast.text to the current stderr for the duration of one CLI call."""
    logger = logging.getLogger("slowfast.text")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, "%H:%M:%S"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _whole_number(lowest: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `lowest` (a bad value is refused with the usage line, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {value}")
        return value

    return parse


def _finite_number(lowest: float, highest: float = math.inf, lowest_allowed: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number in [lowest, highest] (`lowest_allowed=False`: above `lowest`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < lowest or (value == lowest and not lowest_allowed) or value > highest:
            low = f"{'>=' if lowest_allowed else '>'} {lowest:g}"
            raise argparse.ArgumentTypeError(
                f"must be {low}" + (f" and <= {highest:g}" if highest < math.inf else "") + f", got {text}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)
# Waits and timeouts up to a day: no request needs more, and far longer ones overflow the standard library's timers.
_seconds = _finite_number(0.0, 86400.0)
_positive_seconds = _finite_number(0.0, 86400.0, lowest_allowed=False)
# The range OpenAI's API accepts (above about 1 the answers grow close to random).
_temperature = _finite_number(0.0, 2.0)


def _add_llm_args(p: argparse.ArgumentParser, temperature: float) -> None:
    g = p.add_argument_group("LLM server")
    g.add_argument("--model", default=None,
                   help="chat model name (else $OPENAI_MODEL, else OPENAI_MODEL in --env-file, else gpt-4o-mini)")
    g.add_argument("--base-url", default=None,
                   help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 (vLLM) or "
                        "http://127.0.0.1:11434/v1 (Ollama) (else $OPENAI_BASE_URL, else the --env-file, "
                        "else https://api.openai.com/v1)")
    g.add_argument("--api-key", default=None,
                   help="API key (else $OPENAI_API_KEY, else OPENAI_API_KEY in --env-file; prefer those: a flag "
                        "is visible to other users in the process list). Local servers need none. Never printed")
    g.add_argument("--trust-base-url", action="store_true",
                   help="send the API key to the base URL even when the two come from different places (say the "
                        "key from the environment, the URL from --base-url or the --env-file); without it such a "
                        "key is withheld with a warning, so a stray .env cannot collect your key")
    g.add_argument("--env-file", default=".env",
                   help="python-dotenv file read for OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL when they are "
                        "not given otherwise (default: .env in the current folder; see .env.example)")
    g.add_argument("--temperature", type=_temperature, default=None,
                   help=f"sampling temperature, 0 to 2 (default {temperature}, as in the original work)")
    g.add_argument("--max-tokens", type=_positive_int, default=llm_instructions.MAX_TOKENS,
                   help=f"completion token limit per request (default {llm_instructions.MAX_TOKENS}); an answer "
                        f"longer than {llm_instructions.ANSWER_CHARS_PER_TOKEN} characters per token of it is "
                        "rejected and asked again")
    g.add_argument("--timeout", type=_positive_seconds, default=120.0,
                   help="seconds per HTTP request, more than 0 and at most 86400 (default 120)")
    g.add_argument("--max-retries", type=_non_negative_int, default=8,
                   help="retries per request on HTTP 429/408/409/5xx, timeouts and connection errors (default 8)")
    g.add_argument("--backoff-base", type=_seconds, default=1.0,
                   help="retry i waits uniform(0, min(--backoff-max, base * 2**i)) seconds, or the server's "
                        "Retry-After (default 1.0)")
    g.add_argument("--backoff-max", type=_seconds, default=60.0,
                   help="longest wait between retries, seconds, at most 86400 (default 60)")
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=_positive_int, default=4, help="requests in flight at once (default 4)")
    r.add_argument("--max-reasks", type=_non_negative_int, default=2,
                   help="times a class is asked again, with the validation error, after an unusable answer (default 2)")
    r.add_argument("--limit", type=_positive_int, default=None, help="only the first N classes (for a trial run)")
    r.add_argument("--dry-run", type=_non_negative_int, nargs="?", const=2, default=0, metavar="N",
                   help="print the messages for the first N classes still to ask (default 2) and send nothing")
    r.add_argument("--fresh", action="store_true",
                   help="forget the progress folder <output>.parts/ and ask every class again")
    r.add_argument("--quiet", action="store_true", help="log only warnings and errors")


def _parser(command: str, script: str, description: str, examples: list[list[str]]) -> argparse.ArgumentParser:
    """A parser whose usage line and examples name the command as the user ran it: the installed command
    (`stdd-askg`), or the original script under utils/ that forwards to it, as typed."""
    typed = sys.argv[0] if sys.argv and sys.argv[0] else ""
    prog = f"python {typed}" if os.path.basename(typed) == script else command
    epilog = "examples:\n" + "\n".join(f"  {prog} " + " \\\n      ".join(lines) for lines in examples)
    if prog == command:
        epilog += f"\n\n{command} is also utils/{script} (the original script name)."
    return argparse.ArgumentParser(prog=prog, description=textwrap.fill(description, 78), epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def askg_parser() -> argparse.ArgumentParser:
    p = _parser(
        "stdd-askg", "ASKG_text_prompt.py",
        "Stage 1: ask an LLM for the Action Semantic Knowledge Graph (objects, relation triples, sub-actions) "
        "of every class and write them to one YAML, in class-index order. Each class's validated answer is "
        "saved in <output>.parts/ as soon as it arrives; a restarted run asks only for the classes not done yet.",
        [["--classes label_db/k400-index2cls.json", "--output label_db/classes_ASKG_k400.yml --dry-run"],
         ["--classes label_db/k400-index2cls.json", "--output label_db/classes_ASKG_k400.yml --concurrency 8"]],
    )
    p.add_argument("--classes", required=True, help="class-index JSON {\"0\": \"class name\", ...}")
    p.add_argument("--output", required=True, help="ASKG YAML to write (e.g. label_db/classes_ASKG_k400.yml)")
    _add_llm_args(p, llm_instructions.ASKG_TEMPERATURE)
    return p


def xprompt_parser() -> argparse.ArgumentParser:
    p = _parser(
        "stdd-xprompt", "extended_text_prompt.py",
        "Stage 2: turn each class's ASKG triples into extended prompt clauses (one per triple) with an LLM and "
        "write them to one YAML, in class order. Progress is kept in <output>.parts/ as in stage 1; a class is "
        "asked again only if its ASKG entry changed.",
        [["--askg label_db/classes_ASKG_k400.yml --classes label_db/k400-index2cls.json",
          "--output label_db/classes_xprompt_k400.yml --concurrency 8"]],
    )
    p.add_argument("--askg", required=True, help="ASKG YAML written by stdd-askg (stage 1)")
    p.add_argument("--output", required=True, help="xprompt YAML to write (e.g. label_db/classes_xprompt_k400.yml)")
    p.add_argument("--classes", default=None,
                   help="optional class-index JSON: take the classes and their order from it (every class must "
                        "be in the ASKG) instead of the ASKG file's order")
    _add_llm_args(p, llm_instructions.XPROMPT_TEMPERATURE)
    return p


def features_parser() -> argparse.ArgumentParser:
    from slowfast.text.encode_prompts import MODES, PROMPT_ORDERS
    from slowfast.text.templates import DATASETS

    p = _parser(
        "stdd-text-features", "text_prompts.py",
        "Stage 3: encode template x (class name + extended-prompt clause) sentences with CLIP's text tower into "
        "the [K, N, E] feature file read with DATA.TEXT_AUG True DATA.TEXT_AUG_FEATURE_FILE <output>.",
        [["--xprompt label_db/classes_xprompt_k400.yml --classes label_db/k400-index2cls.json",
          "--clip-weights ViT-B/16 --output classes_text_feats_k400_tpl8_xmix_ViT-B_16.pt"],
         ["--mode base --classes label_db/hmdb51-index2cls.json --clip-weights ViT-B/16",
          "--output classes_text_feats_hmdb51_tpl8_base_ViT-B_16.pt"]],
    )
    p.add_argument("--xprompt", default="",
                   help="xprompt YAML written by stdd-xprompt (stage 2); not needed for --mode base")
    p.add_argument("--classes", required=True, help="class-index JSON; row k of the features is class k")
    p.add_argument("--clip-weights", required=True,
                   help="OpenAI-format CLIP checkpoint (TorchScript archive or state dict), or a name such as "
                        "ViT-B/16 found in the CLIP cache; use the same CLIP as the video model")
    p.add_argument("--output", required=True,
                   help="feature file to write, e.g. classes_text_feats_k400_tpl8_xmix_ViT-B_16.pt")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="use label_db/templates/<dataset>.yml, the templates the original work used for that "
                        "dataset (default: the dataset named by the --classes file name, e.g. hmdb51-index2cls.json; "
                        "k400 when the name says none)")
    p.add_argument("--templates-file", default=None,
                   help="YAML with a 'templates' list of sentences holding '{}' (an original classes_label_*.yml "
                        "works too); overrides --dataset")
    p.add_argument("--num-templates", type=_positive_int, default=8, help="use the first N templates (default 8)")
    p.add_argument("--match-by-order", action="store_true",
                   help="pair the classes that no --xprompt key matches by name (even ignoring case and spacing), "
                        "in class order, with the unmatched entries, in file order, as the original scripts did; "
                        "each pair is listed")
    p.add_argument("--mode", choices=MODES, default="xmix",
                   help="clauses per prompt list: xmix = all three kinds (default), xoo / xao / xaa = one kind, "
                        "base = the bare class prompt only")
    p.add_argument("--prompt-order", choices=PROMPT_ORDERS, default="first",
                   help="order of a class's prompts, which decides the ones padding repeats: first = duplicates "
                        "dropped keeping first occurrences, the same every run (default); set = the original's "
                        "(xmix lists through a Python set: an order that changes with PYTHONHASHSEED)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="prompts per text-tower forward (default 256)")
    p.add_argument("--device", default="auto",
                   help="torch device for the text tower: auto (cuda if available), cpu, cuda:0, ...")
    p.add_argument("--truncate", action="store_true",
                   help="cut prompts longer than CLIP's context (77 tokens) instead of stopping with an error")
    p.add_argument("--quiet", action="store_true", help="log only warnings and errors")
    return p


def _make_client_factory(args: argparse.Namespace, secrets: list) -> Callable:
    """A client factory for `run_stage`; the key it resolves is added to `secrets`, which the CLI
    redacts from everything it prints (the key may come from the environment or .env, not a flag)."""
    from slowfast.text.llm import LLMClient, RetryPolicy, resolve_settings

    def make():
        settings = resolve_settings(args.api_key, args.base_url, args.model, env_file=args.env_file,
                                    trust_base_url=args.trust_base_url)
        secrets.append(settings.api_key.reveal())
        retry = RetryPolicy(max_retries=args.max_retries, base_delay=args.backoff_base, max_delay=args.backoff_max)
        return LLMClient(settings, timeout=args.timeout, retry=retry, max_tokens=args.max_tokens)

    return make


def _run_llm_stage(args: argparse.Namespace, build_items: Callable[[], list], spec) -> int:
    from slowfast.text.llm import LLMError, redact
    from slowfast.text.schema import SchemaError
    from slowfast.text.stages import run_stage

    secrets = [args.api_key]
    with _logging(args.quiet):
        try:
            items = build_items()
            report = run_stage(
                items, spec, args.output, _make_client_factory(args, secrets), concurrency=args.concurrency,
                temperature=args.temperature, max_reasks=args.max_reasks, dry_run=args.dry_run, fresh=args.fresh,
                subset=args.limit is not None,
            )
        except (SchemaError, LLMError, OSError) as e:
            raise TextCommandError(redact(str(e), secrets)) from None
        except KeyboardInterrupt:  # a more precise line than the wrapper's: where the finished work is

            print(f"interrupted: finished classes are kept in {args.output}.parts/; run the same command to go on",
                  file=sys.stderr)
            return 130
        if args.dry_run:
            return 0
        print(redact(report.summary(), secrets))
        if report.fatal:
            return 2
        return 1 if report.failures else 0


def refuse_missing_inputs(required: dict[str, str], optional: dict[str, Optional[str]]) -> None:
    """Stop before any work when an input flag names no file (an optional flag left empty is not given)."""
    given = {**required, **{flag: path for flag, path in optional.items() if path}}
    for flag, path in given.items():
        if not path:
            raise TextCommandError(f"{flag} is empty: give the path of a file")
        if os.path.isdir(path):
            raise TextCommandError(f"{flag} {path}: is a folder, not a file")
        if not os.path.isfile(path):
            raise TextCommandError(f"{flag} {path}: no such file")


def refuse_output_among_inputs(output: str, inputs: dict[str, Optional[str]]) -> None:
    """Stop before any work when --output names one of the command's input files (it would be replaced)."""
    for flag, path in inputs.items():
        if path and os.path.abspath(path) == os.path.abspath(output):
            raise TextCommandError(f"--output {output} is the {flag} file; it would be replaced: choose another name")


@cli_main()
def askg_main(argv: Optional[list[str]] = None) -> int:
    args = askg_parser().parse_args(argv)
    refuse_output_among_inputs(args.output, {"--classes": args.classes})
    refuse_missing_inputs({"--classes": args.classes}, {})
    from slowfast.text.stages import ASKG_STAGE, askg_items, read_class_index

    return _run_llm_stage(args, lambda: askg_items(read_class_index(args.classes), args.limit), ASKG_STAGE)


@cli_main()
def xprompt_main(argv: Optional[list[str]] = None) -> int:
    args = xprompt_parser().parse_args(argv)
    refuse_output_among_inputs(args.output, {"--askg": args.askg, "--classes": args.classes})
    refuse_missing_inputs({"--askg": args.askg}, {"--classes": args.classes})
    from slowfast.text.schema import load_entries
    from slowfast.text.stages import XPROMPT_STAGE, read_class_index, xprompt_items

    def items():
        names = read_class_index(args.classes) if args.classes else None
        return xprompt_items(load_entries(args.askg, "askg"), names, args.limit, source=args.askg)

    return _run_llm_stage(args, items, XPROMPT_STAGE)


@cli_main()
def features_main(argv: Optional[list[str]] = None) -> int:
    args = features_parser().parse_args(argv)
    refuse_output_among_inputs(args.output, {"--classes": args.classes, "--xprompt": args.xprompt,
                                             "--clip-weights": args.clip_weights, "--templates-file": args.templates_file})
    refuse_missing_inputs({"--classes": args.classes}, {"--xprompt": args.xprompt, "--templates-file": args.templates_file})
    if args.mode != "base" and not args.xprompt:
        raise TextCommandError("--xprompt is required unless --mode base")
    import torch

    from slowfast.clip import CLIPWeightsError
    from slowfast.text.encode_prompts import make_feature_file
    from slowfast.text.stages import read_class_index
    from slowfast.text.templates import choose_templates_file, load_templates

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with _logging(args.quiet):
        try:
            names = read_class_index(args.classes)
            templates_file, why = choose_templates_file(args.templates_file, args.dataset, args.classes)
            templates = load_templates(templates_file, args.num_templates)
            info = make_feature_file(
                args.xprompt, names, args.clip_weights, args.output, templates, mode=args.mode,
                batch_size=args.batch_size, device=device, truncate=args.truncate,
                templates_source=f"{os.path.basename(templates_file)} ({why})", match_by_order=args.match_by_order,
                prompt_order=args.prompt_order,
            )
        except (UserError, CLIPWeightsError, OSError) as e:
            raise TextCommandError(str(e)) from None
    k, n, e = info["shape"]
    print(f"wrote {args.output}: features [K={k}, N={n}, E={e}] = {len(templates)} templates x "
          f"{info['prompts_per_template']} prompts per template ({args.mode}); distinct prompts per class and "
          f"template: min {info['distinct_min']}, mean {info['distinct_mean']:.1f}, max {info['distinct_max']}")
    print(f"templates: {templates_file} ({why})")
    if args.xprompt:
        print(info["matching"].summary())
    return 0
