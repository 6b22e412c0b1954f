"""tfbayes: Bayesian deep learning methods for TensorFlow / Keras 3, plus t3f_ext."""
from setuptools import find_packages, setup

setup(
    name="tfbayes",
    version="0.1.0",
    description=(
        "Bayesian sparsification layers, implicit reparameterization gradients, "
        "the TRIP prior and a maintained Tensor-Train core for TensorFlow / Keras 3."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tfbayes", "tfbayes.*", "t3f_ext", "t3f_ext.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "tensorflow-probability>=0.24",
        "tf-keras>=2.16",  # TFP imports tf_keras; tfbayes itself never uses it.
        "keras>=3",
        "numpy",
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-xdist",
            "scipy",
            "mpmath",
            "scikit-learn",
            "matplotlib",
            "nbformat",
            "nbclient",
            "ipykernel",
        ],
    },
)
