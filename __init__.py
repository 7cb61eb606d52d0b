"""QGIS plugin entry point.

The installed plugin folder (``cloudremoval/`` in the zip that ``pb_tool zip``
builds) holds this file, ``metadata.txt`` and the ``qgis_cloudremoval``
package; QGIS calls :func:`classFactory` from here.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .qgis_cloudremoval.plugin import CloudRemovalPlugin
    return CloudRemovalPlugin(iface)
