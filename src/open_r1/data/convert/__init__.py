"""Convert geolocation datasets into geo-r's jsonl + image-folder format with one command each:

    python -m open_r1.data.convert FORMAT --out OUT.jsonl [format flags]

Formats (one module each, all writing through `writer.write_records`):

- `osv5m`: OpenStreetView-5M's CSV and image folders
- `im2gps3k`, `yfcc4k`: the standard test sets' `*_places365.csv` and image folders
- `csv`: any table, column names given by flags (MP-16-style training sets)
- `webdataset`: tar shards with an image and a json per sample (images are extracted)
- `exif`: a folder of your own photos with GPS EXIF tags

Every converter fills missing country/region/city offline, writes the conversation (a bare question; the
training template adds the instructions), shows progress and ends with what it wrote and what it skipped
and why. The output loads with `open_r1.data.load_rows(out, image_folder)`.
"""

from open_r1.data.convert.writer import Record, Skip, Summary, WriterOptions, write_records

FORMATS = ("osv5m", "im2gps3k", "yfcc4k", "csv", "webdataset", "exif")
MODULES = {"csv": "csv_table"}  # format name -> module name, where they differ

__all__ = ["FORMATS", "MODULES", "Record", "Skip", "Summary", "WriterOptions", "write_records"]
