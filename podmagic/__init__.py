"""podmagic: run shell commands across Kubernetes pods from IPython and Jupyter.

The package is organised in rooms that each own one concern; see the README's
"Architecture" section. ``podmagic.sandbox`` is a local Kubernetes API server used as the
embedded default for demos and tests.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
