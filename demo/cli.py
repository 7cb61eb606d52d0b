"""The options every demo entry point takes: an output folder and a model."""

import argparse
from pathlib import Path


def demo_arguments(argv, description: str, default_out: str) -> argparse.Namespace:
    """``--out`` (resolved to an absolute :class:`Path`) and ``--model`` (empty: the plugin's default model)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument("--model", default="", help="DSen2-CR .onnx model (default: the plugin's default model)")
    args = parser.parse_args(argv)
    args.out = Path(args.out).resolve()
    return args
