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

`stdd-gpu-check`, `stdd-askg`, `stdd-xprompt` and `stdd-text-features` run `slowfast.benchmarks.gpu` and
`slowfast.cli.text` (`tools/gpu_check.py`, `utils/ASKG_text_prompt.py`, `utils/extended_text_prompt.py`,
`utils/text_prompts.py`).
"""
