"""QGIS-free core of the cloud-removal plugin.

Everything that computes lives here: band tables, scaling, raster I/O with
GDAL, tiling, the onnxruntime wrapper, cloud and shadow masks, metrics and
RGB rendering. This package never imports ``qgis`` or ``torch``, so it runs
from a plain script, a cluster job or a test.
"""
