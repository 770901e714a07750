"""Installs the `pipelines` (TFX pipelines, CLI, components) and `modules` (module files) packages.

The bundled data under data/ is read from the checkout (`make` installs this project editable); the
container image (Dockerfile) installs the packages only: cloud runs read gs:// files or BigQuery.
"""
import setuptools

setuptools.setup(
    name='marketing-ml-pipelines',
    version='0.1.0',
    description='Production-grade TFX pipelines for marketing and recommendation ML.',
    python_requires='>=3.10,<3.11',
    packages=setuptools.find_packages(include=['pipelines', 'pipelines.*', 'modules', 'modules.*']),
    install_requires=['tfx[kfp]==1.16.0', 'lifetimes==0.11.3', 'scipy<1.16', 'pandas<2'],
    entry_points={'console_scripts': ['marketing-pipelines=pipelines.__main__:main']},
)
