"""Command-line entry points, installed as console commands by `pip install -e .` (see setup.py):

| command | module | original script name (kept) |
|---|---|---|
| `stdd-run` | `run_net` | `tools/run_net.py` |
| `stdd-submit` | `submit` | `tools/submit.py` |
| `stdd-zero-shot` | `zero_shot` | `tools/zero_shot.py` |
| `stdd-base-to-novel` | `base_to_novel` | `tools/base_to_novel.py` |
| `stdd-demo` | `demo_net` | `tools/demo_net.py` |
| `stdd-web` | `web_demo` | `tools/web_demo.py` |
| `stdd-average` | `average` | `weight_average_tool.py` |
| `stdd-prepare` | `prepare_dataset` | `tools/prepare_dataset.py` |
| `stdd-benchmark` | `benchmark` | `tools/benchmark.py` |
| `stdd-env` | `env` | none (also `python -m slowfast.utils.env`) |
| `stdd-gpu-check` | `gpu_check` | `tools/gpu_check.py` |
| `stdd-askg`, `stdd-xprompt`, `stdd-text-features` | `text` | `utils/ASKG_text_prompt.py`, `utils/extended_text_prompt.py`, `utils/text_prompts.py` |

Every `main` goes through `slowfast.errors.cli_main` (a user error is one line and an exit status, Ctrl-C one
line and 130); the scripts under `tools/`, `utils/` and `weight_average_tool.py` only forward to these.
"""
