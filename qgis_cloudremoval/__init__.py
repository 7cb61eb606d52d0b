"""Cloud removal for Sentinel-2 with Sentinel-1 (DSen2-CR) as a QGIS Processing plugin.

Imports inside this package are relative so that it works both from a
checkout (``qgis_cloudremoval``) and installed as a QGIS plugin
(``cloudremoval.qgis_cloudremoval``).
"""


from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qgis.gui import QgisInterface

    from .plugin import CloudRemovalPlugin


def classFactory(iface: "QgisInterface") -> "CloudRemovalPlugin":  # noqa: N802 (QGIS's name)
    """The plugin, as QGIS asks for it when it loads the plugin."""
    from .plugin import CloudRemovalPlugin
    return CloudRemovalPlugin(iface)
