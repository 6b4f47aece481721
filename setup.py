"""restreact: ReST meets ReAct, self-improving search agents in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="restreact",
    version="0.1.0",
    description="ReST meets ReAct: self-improving multi-step search agents with Gemma in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["restreact", "restreact.*"]),
    package_data={"restreact.prompts": ["templates/*.txt"]},
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "ml-collections>=1.1.0",
        "absl-py>=2.0",  # restreact.launch (also a dependency of ml-collections)
        "etils[epy]>=1.5",  # lazy imports: the config check loads no jax (also a dependency of orbax)
        "jaxtyping>=0.2.36",  # shape annotations of the model code (documentation; not checked at run time)
        "sentencepiece>=0.2.0",
        "safetensors>=0.4.0",
        "ml_dtypes>=0.5",
        "numpy>=1.26",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "bm25s>=0.3.16",
        "PyStemmer>=2.2",
        "requests>=2.31",
        # NQ-open is read with tfds.data_source (ArrayRecord), which needs no TensorFlow.
        "tensorflow-datasets>=4.9.10",
        "scipy>=1.11",
        "matplotlib>=3.8",
    ],
    extras_require={
        # transformers and torch are the reference implementation the tests compare against;
        # nbclient, nbformat and ipykernel run notebooks/explore.ipynb in tests/test_notebook.py; pytest-xdist
        # runs the suite on two workers.
        "test": ["pytest>=8", "pytest-xdist>=3.6", "hypothesis>=6.100", "torch==2.13.0", "transformers>=5.0,<6",
                 "nbclient>=0.11.0", "nbformat>=5.11.1", "ipykernel>=7.4.0"],
        # Accelerators: the jax build for the chip, pinned to the CPU stack's version (requirements.txt).
        # cuda: CUDA 12 wheels from PyPI (no system CUDA needed); on a machine with CUDA 13 use jax[cuda13].
        "tpu": ["jax[tpu]==0.10.2"],
        "cuda": ["jax[cuda12]==0.10.2"],
        # peft: the LoRA fine-tuning baseline of benchmarks/train.py (not needed by the tests).
        "bench": ["pytest>=8", "hypothesis>=6.100", "torch==2.13.0", "transformers>=5.0,<6", "peft>=0.17"],
    },
)
