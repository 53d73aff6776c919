"""Read a py-spy profile of `python -m benchmarks.run --profile DIR` (collapsed stacks, one line
a stack with its sample count) as text: where the samples go, inclusive and self, and what lies
under a frame.

    python -m benchmarks.stacks DIR/worker-bench.txt
    python -m benchmarks.stacks DIR/worker-bench.txt --under _Instance._create_instance --depth 12
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LINE_NUMBER = re.compile(r":\d+\)")
IDLE = ("EpollSelector.select", "_worker (concurrent/futures/thread.py)")  # waiting, not working


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([LINE_NUMBER.sub(")", f) for f in stack.split(";")], int(count)))
    return stacks


def busy(stacks: list[tuple[list[str], int]]) -> list[tuple[list[str], int]]:
    """Without the samples of threads waiting (event loop select, idle thread-pool workers)."""
    return [(frames, n) for frames, n in stacks if not any(frames[-1].startswith(i) for i in IDLE)]


def inclusive_and_self(stacks: list[tuple[list[str], int]]) -> tuple[Counter, Counter]:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    for frames, n in stacks:
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    return inclusive, own


def under(stacks: list[tuple[list[str], int]], needle: str, depth: int) -> Counter:
    below: Counter = Counter()
    for frames, n in stacks:
        at = next((i for i, f in enumerate(frames) if needle in f), None)
        if at is not None:
            below[" ; ".join(frames[at + 1:at + 1 + depth]) or "(itself)"] += n
    return below


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stacks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", help="what lies under the first frame containing this text")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--idle", action="store_true", help="keep the samples of waiting threads")
    args = parser.parse_args(argv)
    stacks = read(args.profile)
    if not args.idle:
        stacks = busy(stacks)
    total = sum(n for _, n in stacks) or 1
    print(f"{total} samples{'' if args.idle else ' (waiting threads left out)'}")
    if args.under:
        below = under(stacks, args.under, args.depth)
        print(f"under {args.under}: {sum(below.values()) / total:.1%}")
        for frames, n in below.most_common(args.top):
            print(f"{n / total:6.1%}  {frames}")
        return
    inclusive, own = inclusive_and_self(stacks)
    print("-- inclusive")
    for f, n in inclusive.most_common(args.top):
        print(f"{n / total:6.1%}  {f}")
    print("-- self")
    for f, n in own.most_common(args.top):
        print(f"{n / total:6.1%}  {f}")


if __name__ == "__main__":
    main()
