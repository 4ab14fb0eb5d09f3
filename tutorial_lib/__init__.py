"""Multi-scale ResNet-101, step by step."""
__version__ = "0.1.0"
