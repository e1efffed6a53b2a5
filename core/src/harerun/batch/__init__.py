"""``harerun batch``: analyse a collection of photos into JSONL, CSV or Parquet records, resumably,
with local analysis processes or on a Ray cluster.

- :mod:`.inputs`: finding the photos (files, folders, globs, ``@lists``, ``s3://``) and reading one
- :mod:`.s3input`: listing and reading photos in S3
- :mod:`.records`: one record per (photo, variant), made by an :class:`~.records.Analyzer`
- :mod:`.sinks`: the output file in each format, ``--resume``, and :func:`~.sinks.iter_records`
- :mod:`.runner`: the run (local processes), its summary and signals
- :mod:`.ray_runner`: the same on Ray Data

docs/batch.md describes the records and the Ray recipe.
"""

from harerun.batch.inputs import IMAGE_SUFFIXES, NoPhotos, collect_inputs, read_photo, sha256_file
from harerun.batch.records import Analyzer, Settings, Variant, csv_columns, flatten
from harerun.batch.runner import plan_variants, run_batch
from harerun.batch.sinks import FORMATS, RETRIED_CODES, LineSink, ParquetSink, Resume, iter_records

__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "RETRIED_CODES",
    "Analyzer",
    "LineSink",
    "NoPhotos",
    "ParquetSink",
    "Resume",
    "Settings",
    "Variant",
    "collect_inputs",
    "csv_columns",
    "flatten",
    "iter_records",
    "plan_variants",
    "read_photo",
    "run_batch",
    "sha256_file",
]
