"""TFDS builders (manual_dir = the official dataset directory) and the pipeline's TFDS source.

Prepare once, then train with --config.data.source=tfds --config.data.tfds_dir=DIR:

    python -m data_pipeline.tfds.prepare --name=coco --manual_dir=/data/coco --data_dir=/data/tfds

Examples are per-person records carrying their image's JPEG bytes, stored as ArrayRecord,
so every host reads only the records of its own shard, by index.
"""
