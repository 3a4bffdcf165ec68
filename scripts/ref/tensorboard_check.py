#!/usr/bin/env python3
"""TensorBoard event files, checked with the `tensorboard` Python package (pip install tensorboard).

  python3 scripts/ref/tensorboard_check.py DIR [--metrics metrics.jsonl]
      Reads DIR's event file(s) with tensorboard's EventAccumulator and prints every scalar as JSON
      ({tag: [[step, value], ...]}). With --metrics, also checks them against the run's metrics.jsonl: every finite
      number of every row (but "step") at step = "step" + 1 (training rows) or "step" (rows with "kind": "eval"),
      equal as float32; exits 1 on any difference.
  python3 scripts/ref/tensorboard_check.py --write-fixture OUT_DIR
      Writes Tests/Fixtures/tensorboard/: events.json (the events) and events.out.tfevents.fixture, the same events
      framed by tensorboard's own RecordWriter (tensorboard.summary.writer.record_writer, masked CRC-32C) from
      tensorboard's own Event/Summary protos. TensorBoardFileTests writes events.json with rlif's writer and
      compares the bytes.
"""
import argparse, json, math, os, struct, sys

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--metrics")
ap.add_argument("--write-fixture", action="store_true")
args = ap.parse_args()

if args.write_fixture:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    # Fixed wall times so the bytes are reproducible; 0.0 (a oneof member must still be written), negative, a
    # value float32 rounds, large steps, an eval-like record at step 0.
    spec = {
        "file_wall_time": 1764000000.25,
        "events": [
            {"wall_time": 1764000001.5, "step": 0, "scalars": {"eval_accuracy": 0.125, "eval_count": 8.0}},
            {"wall_time": 1764000002.75, "step": 1, "scalars": {"kl": 0.0, "loss": -0.0312, "lr": 3e-6, "reward_mean": 0.6180339887}},
            {"wall_time": 1764000003.0, "step": 2, "scalars": {"kl": 1.5e-4, "loss": 12.5, "lr": 2.9e-6, "reward_mean": -1.25}},
            {"wall_time": 1764000004.125, "step": 123456789, "scalars": {"trained_tokens": 65536.0}},
        ],
    }
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "events.json"), "w") as f:
        json.dump(spec, f, indent=1)
    with open(os.path.join(args.dir, "events.out.tfevents.fixture"), "wb") as f:
        w = RecordWriter(f)
        w.write(event_pb2.Event(wall_time=spec["file_wall_time"], file_version="brain.Event:2").SerializeToString())
        for e in spec["events"]:
            values = [summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in sorted(e["scalars"].items())]
            w.write(event_pb2.Event(wall_time=e["wall_time"], step=e["step"],
                                    summary=summary_pb2.Summary(value=values)).SerializeToString())
    print(f"wrote {args.dir}")
    sys.exit(0)

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(args.dir, size_guidance={"scalars": 0})
acc.Reload()
scalars = {tag: [[s.step, s.value] for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
print("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(scalars.items())) + "\n}")
if args.metrics:
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
    want = {}
    with open(args.metrics) as f:
        for line in f:
            row = json.loads(line)
            # Rows with a "kind" count steps done; rows of the schema before it (no kind) were 0-based.
            step = row["step"] if "kind" in row else row["step"] + 1
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    want.setdefault(k, []).append([step, f32(float(v))])
    bad = [k for k in sorted(set(want) | set(scalars)) if want.get(k) != scalars.get(k)]
    for k in bad:
        print(f"MISMATCH {k}: metrics.jsonl {want.get(k)} vs event file {scalars.get(k)}", file=sys.stderr)
    n = sum(len(v) for v in want.values())
    print(f"{'FAIL' if bad else 'OK'}: {n} scalars of {len(want)} tags from {args.metrics}", file=sys.stderr)
    sys.exit(1 if bad else 0)
