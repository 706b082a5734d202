"""Convert between Hugging Face model dirs and t5x_xfer orbax checkpoints.

python -m t5x_xfer.convert import_hf --hf_dir DIR_OR_HUB_ID --out CKPT
python -m t5x_xfer.convert export_hf --checkpoint CKPT --out DIR
"""

from __future__ import annotations

import argparse
import sys

from t5x_xfer import hf, logs
from t5x_xfer.io_utils import check_output_dir
from t5x_xfer.models import DTYPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m t5x_xfer.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import_hf", help="Hugging Face dir or hub id -> orbax checkpoint")
    imp.add_argument("--hf_dir", required=True, help="local model dir or hub id (org/name)")
    imp.add_argument("--out", required=True, help="checkpoint directory to create")
    imp.add_argument("--dtype", default="float32", choices=DTYPES, help="compute dtype recorded")
    exp = sub.add_parser("export_hf", help="orbax checkpoint -> Hugging Face dir")
    exp.add_argument("--checkpoint", required=True, help="checkpoint root or step directory")
    exp.add_argument("--out", required=True, help="Hugging Face model directory to write")
    exp.add_argument(
        "--tokenizer_dir",
        default=None,
        help="copy tokenizer files from here (default: those saved at import)",
    )
    logs.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    logs.setup(args.verbose)
    try:
        check_output_dir(args.out, "--out")
        if args.command == "import_hf":
            out = hf.import_hf(hf_dir=args.hf_dir, out=args.out, dtype=args.dtype)
        else:
            out = hf.export_hf(
                checkpoint=args.checkpoint, out=args.out, tokenizer_dir=args.tokenizer_dir
            )
    except (OSError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
