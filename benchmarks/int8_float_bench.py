"""MPNet's int8 float exceptions (issue 39, models/families.py ``int8_float``): all-mpnet-base-v2 exported fp32 by bort,
then quantised by bort's own quantiser with every matrix product in int8, and with the family's exceptions in float;
each scored against the fp32 graph on STS-B dev sentences (hidden states ‖Δ‖/‖x‖, sentence embeddings' least cosine)
and on the task (Spearman of the pairs' cosines against the gold scores), side by side in one run.

    ../shared/tools/get-mpnet-teacher        # prints the teacher's folder
    python benchmarks/int8_float_bench.py --teacher ~/.cache/bort-teachers/all-mpnet-base-v2 [--pairs 64]

Writes benchmarks/results/int8/mpnet-float-exceptions.json.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import onnxruntime as ort
from common import GLUE, OUT, RESULTS, provenance, write_result
from scipy.stats import spearmanr
from transformers import AutoTokenizer

from bort.export.onnx import ExportConfig, _quantize, export_onnx
from bort.models.families import FAMILIES


def _pairs(n: int) -> tuple[list[str], list[str], list[float]]:
    with open(GLUE / "STS-B" / "dev.tsv", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1 : n + 1]
    return [r[7] for r in rows], [r[8] for r in rows], [float(r[9]) for r in rows]


def _score(path: Path, feed: dict, ref: list[np.ndarray], n: int, gold: list[float]) -> dict:
    hidden, emb = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    cos = (emb * ref[1]).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref[1], axis=1)
    return {"hidden_rms_relative_error": float(np.linalg.norm(hidden - ref[0]) / np.linalg.norm(ref[0])),
            "embedding_rms_relative_error": float(np.linalg.norm(emb - ref[1]) / np.linalg.norm(ref[1])),
            "least_embedding_cosine": float(cos.min()),
            "stsb_spearman": float(spearmanr((emb[:n] * emb[n:]).sum(1), gold)[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True, help="the all-mpnet-base-v2 folder (../shared/tools/get-mpnet-teacher)")
    ap.add_argument("--pairs", type=int, default=64, help="the first N STS-B dev pairs")
    args = ap.parse_args()
    work = OUT / "int8_float"
    fp32 = work / "fp32"
    if not (fp32 / "export.json").is_file():
        export_onnx(ExportConfig(model=args.teacher, out=fp32, progress=False))
    first, second, gold = _pairs(args.pairs)
    tok = AutoTokenizer.from_pretrained(fp32)
    enc = tok(first + second, padding=True, truncation=True, max_length=128, return_tensors="np")
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    ref = ort.InferenceSession(str(fp32 / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)
    variants = {"every product int8": (), "the family's exceptions float": FAMILIES["mpnet"].int8_float}
    results = {}
    for name, keep in variants.items():
        _quantize(fp32 / "model.onnx", work / "int8.onnx", [], keep)
        results[name] = {"keep_float": list(keep), **_score(work / "int8.onnx", feed, ref, args.pairs, gold)}
    e = np.array(ref[1])
    results["fp32"] = {"stsb_spearman": float(spearmanr((e[: args.pairs] * e[args.pairs :]).sum(1), gold)[0])}
    doc = {"benchmark": "int8_float", "teacher": "all-mpnet-base-v2", "source": args.teacher, "data": f"glue/stsb dev, first {args.pairs} pairs",
           "results": results, **provenance()}
    path = write_result(RESULTS / "int8" / "mpnet-float-exceptions.json", doc)
    for name, r in results.items():
        print(name, {k: round(v, 4) for k, v in r.items() if isinstance(v, float)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
