from setuptools import find_packages, setup

setup(
    name="stdd",
    version="0.1.0",
    description="STDD (Spatiotemporal Dynamic Duo): zero-shot video action recognition with CLIP",
    license="Apache-2.0",
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
    ],
    packages=find_packages(include=["slowfast", "slowfast.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "av",
        "openai>=1.0",
        "python-dotenv",
        "pyyaml",
        "tensorboard",
        "yacs>=0.1.8",
        "tqdm",
        "open_clip_torch",
        "numpy",
        "matplotlib",
        "submitit",
    ],
    # Only `stdd-web` (tools/web_demo.py) needs Gradio: pip install -e ".[web]" (requirements.txt has it too).
    extras_require={"web": ["gradio"]},
    # The same commands as the scripts under tools/, utils/ and weight_average_tool.py, which keep working.
    entry_points={
        "console_scripts": [
            "stdd-run = slowfast.cli.run_net:main",
            "stdd-submit = slowfast.cli.submit:main",
            "stdd-zero-shot = slowfast.cli.zero_shot:main",
            "stdd-base-to-novel = slowfast.cli.base_to_novel:main",
            "stdd-demo = slowfast.cli.demo_net:main",
            "stdd-web = slowfast.cli.web_demo:main",
            "stdd-average = slowfast.cli.average:main",
            "stdd-prepare = slowfast.cli.prepare_dataset:main",
            "stdd-benchmark = slowfast.cli.benchmark:main",
            "stdd-env = slowfast.cli.env:main",
            "stdd-gpu-check = slowfast.cli.gpu_check:main",
            "stdd-askg = slowfast.cli.text:askg_main",
            "stdd-xprompt = slowfast.cli.text:xprompt_main",
            "stdd-text-features = slowfast.cli.text:features_main",
        ],
    },
)
