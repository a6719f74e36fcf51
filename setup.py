from setuptools import find_packages, setup

setup(
    name="stdd",
    version="0.1.0",
    description="STDD (Spatiotemporal Dynamic Duo): zero-shot video action recognition with CLIP",
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
    ],
)
