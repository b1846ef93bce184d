#!/usr/bin/env python3
"""Entry point: `python run_all.py --table kd`. All logic lives in suite/cli.py."""
import sys

from suite.cli import main

if __name__ == "__main__":
    sys.exit(main())
