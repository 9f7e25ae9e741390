"""Convert geolocation datasets into geo-r's jsonl + image-folder format, one command each:

    python -m open_r1.data.convert FORMAT --out OUT.jsonl [format flags]

FORMAT is `osv5m`, `im2gps3k`, `yfcc4k`, `csv` (any table), `webdataset` (tar shards) or `exif` (your own photos).
Every converter fills missing country/region/city offline and ends with what it wrote, what it skipped and why;
the output loads with `open_r1.data.load_rows(out, image_folder)`.
"""

from open_r1.data.convert.writer import Record, Skip, Summary, WriterOptions, write_records

FORMATS = ("osv5m", "im2gps3k", "yfcc4k", "csv", "webdataset", "exif")
MODULES = {"csv": "csv_table"}  # format name -> module name, where they differ

__all__ = ["FORMATS", "MODULES", "Record", "Skip", "Summary", "WriterOptions", "write_records"]
