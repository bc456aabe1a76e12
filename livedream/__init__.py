"""livedream: a real-time DeepDream filter for webcams, video files and photos.

Heavy modules (TensorFlow) load on first use; ``livedream --help`` stays fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
