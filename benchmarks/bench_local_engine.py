"""Benchmark: speech-to-text on this machine (engine: faster-whisper).

Run from the repository root, with the local extra installed:

    .venv/bin/python benchmarks/bench_local_engine.py [--model PATH] [--audio WAV --script TXT]

Transcribes the shipped recording (recipes/audio/team-sync.wav, against its script
team-sync.txt) once per setting, each in a fresh subprocess (so the model's loading and
its peak memory are that run's own), and prints side by side:

- WER: word error rate against the script (jiwer; case and punctuation ignored);
- load s: seconds to load the model;
- wall s and CPU s of the decoding, and the real-time factor of each (seconds per
  second of audio: below 1 is faster than real time);
- peak RSS: the subprocess's peak resident memory, MB.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "recipes" / "audio" / "team-sync.wav"
SCRIPT = ROOT / "recipes" / "audio" / "team-sync.txt"
SETTINGS = [
    {"beam_size": 5, "compute_type": "int8"},
    {"beam_size": 1, "compute_type": "int8"},
    {"beam_size": 5, "compute_type": "float32"},
]


def one_run(audio: str, model: str | None, settings: dict[str, object]) -> dict[str, float]:
    """In this (child) process: load, decode, and say how long each took."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(ROOT))
    from runner.transcript.local_engine import default_model, whisper_model

    name = model or default_model()
    began = time.monotonic()
    whisper_model(name, str(settings["compute_type"]), 2)
    loaded = time.monotonic() - began
    from runner.transcript.local_engine import transcribe_file

    cpu, wall = time.process_time(), time.monotonic()
    found = transcribe_file(
        Path(audio), {**settings, "model": model, "language": "en"}, "bench", threads=2
    )
    return {
        "load": loaded,
        "wall": time.monotonic() - wall,
        "cpu": time.process_time() - cpu,
        "duration": float(found["audio_duration"]),
        "text": found["text"],  # type: ignore[dict-item]
    }


def label_of(settings: dict[str, object]) -> str:
    return f"beam {settings['beam_size']}, {settings['compute_type']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a faster-whisper model folder (default: bundled tiny.en)")
    parser.add_argument("--audio", default=str(AUDIO))
    parser.add_argument("--script", default=str(SCRIPT), help="what is said in --audio")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.audio, args.model, json.loads(args.child))))
        return
    import jiwer

    normal = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    reference = Path(args.script).read_text()
    print(f"{Path(args.audio).name}, model {args.model or 'tiny.en (bundled)'}, 2 threads")
    columns = ("WER", "load s", "wall s", "CPU s", "RTF wall", "RTF CPU", "peak RSS")
    print(f"{'setting':<28} " + " ".join(f"{c:>8}" for c in columns))
    for settings in SETTINGS:
        command = [sys.executable, __file__, "--audio", args.audio, "--child", json.dumps(settings)]
        if args.model:
            command += ["--model", args.model]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest yet
        if status != 0:
            raise SystemExit(f"{label_of(settings)}: the run failed")
        peak = usage.ru_maxrss  # kilobytes on Linux
        result = json.loads(output.strip().splitlines()[-1])
        error = jiwer.wer(
            reference, result["text"], reference_transform=normal, hypothesis_transform=normal
        )
        label = label_of(settings)
        duration = result["duration"]
        print(
            f"{label:<28} {error:6.1%} {result['load']:7.2f} {result['wall']:7.2f} "
            f"{result['cpu']:6.2f} {result['wall'] / duration:9.3f} "
            f"{result['cpu'] / duration:8.3f} "
            f"{peak / 1024:7.0f} MB"
        )


if __name__ == "__main__":
    main()
