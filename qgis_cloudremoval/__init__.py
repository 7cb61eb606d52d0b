"""Cloud removal for Sentinel-2 with Sentinel-1 (DSen2-CR) as a QGIS Processing plugin.

Imports inside this package are relative so that it works both from a
checkout (``qgis_cloudremoval``) and installed as a QGIS plugin
(``cloudremoval.qgis_cloudremoval``).
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import CloudRemovalPlugin
    return CloudRemovalPlugin(iface)
