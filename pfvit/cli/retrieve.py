"""Face retrieval: build a memory of classifier embeddings, then query it with photos.

    python pipelines/retrieve.py action=build checkpoint=runs/vit/best shards=shards/rafdb split=train \
        memory=runs/memory
    python pipelines/retrieve.py action=build checkpoint=runs/vit/best folder=frames/ memory=runs/memory_frames
    python pipelines/retrieve.py action=query memory=runs/memory checkpoint=runs/vit/best \
        inputs=[photo.jpg,folder/] k=5 out=runs/memory/query

build writes MEMORY/vectors.safetensors (unit-length features), items.jsonl (key, label, source) and meta.json;
files that cannot be read and photos without a face are listed in MEMORY/skipped.json. query detects and aligns
every face of the query images (aligned=true: they are aligned faces already), finds each one's k most similar
faces by cosine (exact: one matrix product), and writes OUT/results.jsonl and the sheet OUT/neighbours.png.
The spelling of earlier releases (`retrieve.py build --checkpoint … photo.jpg -k 5`) still works, with a
deprecation line.
"""

import json
from pathlib import Path

from ..config import parse_stage_args, require
from ..errors import UserError, cli_entry
from ..schemas.retrieve import RETRIEVE_LEGACY, RetrieveConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(RetrieveConfig, argv, __doc__, legacy=RETRIEVE_LEGACY)
    require(cfg, "checkpoint", "memory")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..data.align import FaceAligner
    from ..eval.retrieval import FaceMemory, folder_faces, neighbour_sheet, query_faces, shard_faces
    from ..devices import resolve_device
    from ..inference import load_classifier
    from ..predict import expand_inputs

    device = resolve_device(cfg.device)
    classifier = load_classifier(cfg.checkpoint).to(device)
    if cfg.action == "build":
        if (cfg.shards is None) == (cfg.folder is None):
            raise UserError("action=build needs exactly one source: shards=DIR (with split=) or folder=DIR")
        skipped = []
        faces = shard_faces(cfg.shards, cfg.split) if cfg.shards else \
            folder_faces(cfg.folder, FaceAligner(classifier.img_size, keep="all", device=device), skipped)
        memory = FaceMemory.build(classifier, faces, checkpoint=cfg.checkpoint)
        memory.save(cfg.memory)
        (Path(cfg.memory) / "skipped.json").write_text(json.dumps(skipped, indent=2))
        print(f"memory of {memory.meta['count']} faces in {cfg.memory}; {len(skipped)} inputs skipped")
        return 0
    memory = FaceMemory.load(cfg.memory)
    files, skipped = expand_inputs(cfg.inputs)
    aligner = None if cfg.aligned else FaceAligner(classifier.img_size, keep="all", device=device)
    queries, sources = query_faces(files, aligner, skipped)
    if not queries:
        raise UserError(f"no query face found in {cfg.inputs} ({len(skipped)} inputs skipped)")
    results = memory.search(classifier, queries, cfg.k)
    out = Path(cfg.out or Path(cfg.memory) / "query")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w") as fh:
        for source, hits in zip(sources, results):
            fh.write(json.dumps({"query": source, "neighbours": [
                {"score": round(s, 4), "key": it.key, "label": it.label, "source": it.source} for s, it in hits]})
                + "\n")
        for entry in skipped:
            fh.write(json.dumps({"query": entry["source"], "neighbours": [], "error": entry["error"]}) + "\n")
    neighbour_sheet(queries, results, out / "neighbours.png")
    print(f"{len(queries)} query faces → {out}/results.jsonl, {out}/neighbours.png; {len(skipped)} inputs skipped")
    return 0
