"""Run the plugin's algorithms through ``qgis_process`` in a private QGIS profile.

``qgis_process`` runs Debian's ``/usr/bin/python3``; the project's packages
(onnxruntime) reach it through ``PYTHONPATH``. The plugin lives in a fresh
profile (``QGIS_CUSTOM_CONFIG_PATH``) and is enabled there, so the user's own
profile is never touched. Used by the demo and by the tests.
"""

import json
import os
import subprocess
import sysconfig
from pathlib import Path
from typing import Dict, List, Optional

#: Debian's /usr/bin/qgis_process wrapper adds an option (--noversioncheck) that 3.22 rejects.
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
PLUGIN_NAME = "cloudremoval"


class QgisProcessError(RuntimeError):
    pass


class QgisProcess:
    """A QGIS profile under ``config_dir`` with the plugin enabled.

    ``plugin_dir`` (a checkout's root, which holds ``__init__.py`` and
    ``metadata.txt``) is linked into the profile; leave it out when the
    plugin is already installed there (from the zip, say).
    """

    def __init__(self, config_dir: Path, plugin_dir: Optional[Path] = None) -> None:
        self.config_dir = Path(config_dir)
        plugins = self.config_dir / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        if plugin_dir is not None and not (plugins / PLUGIN_NAME).exists():
            (plugins / PLUGIN_NAME).symlink_to(Path(plugin_dir).resolve(), target_is_directory=True)
        self.env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(self.config_dir),
                        PYTHONPATH=sysconfig.get_paths()["purelib"])
        self.call(["plugins", "enable", PLUGIN_NAME])

    def call(self, arguments: List[str], check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        """``qgis_process ARGUMENTS``; with ``check``, a failure raises with the tool's last lines."""
        result = subprocess.run([QGIS_PROCESS, *arguments], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
            raise QgisProcessError(f"qgis_process {' '.join(arguments[:3])} failed (exit {result.returncode}): "
                                   + " | ".join(detail))
        return result

    def run(self, algorithm: str, parameters: Dict[str, object]) -> Dict:
        """Run ``algorithm`` (an id or a .model3 path); returns qgis_process's JSON (``results``, ``log``)."""
        arguments = ["--json", "run", algorithm, "--"] + [f"{key}={value}" for key, value in parameters.items()]
        stdout = self.call(arguments).stdout
        return json.loads(stdout[stdout.index("{"):])
