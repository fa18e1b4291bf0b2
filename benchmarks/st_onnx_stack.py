"""Which stack runs an export's graph in sentence-transformers (issue 40): bort's int8 export of all-MiniLM-L6-v2 loaded
with ``SentenceTransformer(EXPORT, backend="onnx", model_kwargs={"file_name": "model.onnx"})`` in an environment of the
pins its model card names (``bort.models.card.ONNX_STACK``, built here with pip), against ``bort predict --embed`` on the
same graph; and what ``SentenceTransformer(EXPORT)`` runs by default in bort's own environment (the fp32 PyTorch
weights the folder also holds), side by side on STS-B dev sentences.

    python benchmarks/st_onnx_stack.py [--stack-python PATH] [--sentences 200]

Without ``--stack-python`` the environment is made in benchmarks/out/st_onnx_stack/venv (pip, from the package index).
Writes benchmarks/results/stack/st-onnx.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import GLUE, OUT, RESULTS, provenance, write_result

from bort.export.onnx import ExportConfig, export_onnx
from bort.models.card import ONNX_STACK
from bort.models.runtime import embed_texts, load_predictor
from bort.models.sentence import read_pooling

RUN = """
import json, sys
import importlib.metadata as md
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[2]))
model = SentenceTransformer(sys.argv[1], backend="onnx", model_kwargs={"file_name": "model.onnx"}, device="cpu")
versions = {p: md.version(p) for p in ("sentence-transformers", "transformers", "optimum", "optimum-onnx", "onnxruntime", "torch")}
print(json.dumps({"versions": versions, "one": model.encode(texts, batch_size=1).tolist(), "batched": model.encode(texts).tolist()}))
"""


def _sentences(n: int) -> list[str]:
    with open(GLUE / "STS-B" / "dev.tsv", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [text for r in rows for text in (r[7], r[8])][:n]


def _stack(python: str | None, work: Path) -> str:
    """The Python of an environment with ONNX_STACK (and the CPU build of torch), made once in ``work`` unless given."""
    if python:
        return python
    venv = work / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "torch==2.13.0", *ONNX_STACK], check=True)
    return str(venv / "bin" / "python")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _graph(export: Path, texts: list[str]) -> np.ndarray:
    """The graph's own ``sentence_embedding``, one text a call, in an ONNX Runtime session of the default options (as Optimum
    opens one; bort's runtime turns SkipLayerNormFusion off for speed, which moves int8 results a little)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok, session = AutoTokenizer.from_pretrained(export), ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = (tok([t], truncation=True, max_length=256, return_tensors="np") for t in texts)
    return np.array([session.run(["sentence_embedding"], {k: enc[k].astype(np.int64) for k in names})[0][0] for enc in feeds])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack-python", help="the Python of an environment with the card's stack (default: make one)")
    ap.add_argument("--sentences", type=int, default=200, help="the first N STS-B dev sentences")
    args = ap.parse_args()
    work = OUT / "st_onnx_stack"
    export = work / "int8"
    if not (export / "export.json").is_file():
        export_onnx(ExportConfig(model="minilm-l6", out=export, quantize="int8", progress=False))
    texts = _sentences(args.sentences)
    (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    python = _stack(args.stack_python, work)
    got = json.loads(subprocess.run([python, "-c", RUN, str(export), str(work / "texts.json")], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    predictor, pooling = load_predictor(export), read_pooling(export)
    # int8 by dynamic quantisation: each matrix product's input scale is taken over the whole batch, so the same text scores a
    # little differently beside other texts. One text a call shows the graph is the same; batches of 32 show what users get.
    one, batched = (embed_texts(predictor, texts, pooling, max_len=256, batch_size=b) for b in (1, 32))
    from sentence_transformers import SentenceTransformer  # bort's own environment: the default backend

    default = SentenceTransformer(str(export), device="cpu").encode(texts)
    compared = {name: {"max_abs_difference": float(np.abs(np.array(got[key]) - ours).max()),
                       "least_cosine": float(_cosines(np.array(got[key]), ours).min())}
                for name, key, ours in (("graph", "one", _graph(export, texts)), ("one", "one", one), ("batched", "batched", batched))}
    doc = {"benchmark": "st_onnx_stack", "teacher": "all-MiniLM-L6-v2", "export": "int8",
           "data": f"glue/stsb dev, the first {len(texts)} sentences", "stack": list(ONNX_STACK), "stack_versions": got["versions"],
           "st_onnx_vs_the_graph_run_directly": compared["graph"],
           "st_onnx_vs_bort_predict": {"one text a call": compared["one"], "batches of 32 (each its own order)": compared["batched"]},
           "st_default_backend_vs_int8_graph": {"least_cosine": float(_cosines(default, one).min()),
                                                "mean_cosine": float(_cosines(default, one).mean()),
                                                "runs": "the fp32 PyTorch weights (model.safetensors), not model.onnx"},
           **provenance()}
    path = write_result(RESULTS / "stack" / "st-onnx.json", doc)
    print(json.dumps({k: v for k, v in doc.items() if k.startswith(("st_", "stack"))}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
