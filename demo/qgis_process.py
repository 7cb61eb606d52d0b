"""Run the plugin's algorithms through ``qgis_process`` in a private QGIS profile.

``qgis_process`` runs Debian's ``/usr/bin/python3``; the project's packages
(onnxruntime) reach it through ``PYTHONPATH``. The plugin is linked into a
fresh profile (``QGIS_CUSTOM_CONFIG_PATH``) and enabled there, so the user's
own profile is never touched.
"""

import json
import os
import site
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
    """A QGIS profile in ``profile_dir`` with the plugin folder ``plugin_dir`` installed and enabled."""

    def __init__(self, profile_dir: Path, plugin_dir: Path, extra_env: Optional[Dict[str, str]] = None) -> None:
        self.profile_dir = Path(profile_dir)
        plugins = self.profile_dir / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        link = plugins / PLUGIN_NAME
        if not link.exists():
            link.symlink_to(Path(plugin_dir).resolve(), target_is_directory=True)
        self.env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(self.profile_dir),
                        PYTHONPATH=os.pathsep.join(_python_paths()), **(extra_env or {}))
        self.call(["plugins", "enable", PLUGIN_NAME])

    def call(self, arguments: List[str], timeout: int = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([QGIS_PROCESS, *arguments], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
            raise QgisProcessError(f"qgis_process {' '.join(arguments[:2])} failed (exit {result.returncode}): "
                                   + " | ".join(detail))
        return result

    def run(self, algorithm: str, **parameters) -> Dict:
        """Run ``algorithm`` with ``PARAMETER=value`` arguments; returns qgis_process's JSON (``results``, ``log``)."""
        arguments = ["--json", "run", algorithm, "--"] + [f"{key}={value}" for key, value in parameters.items()]
        stdout = self.call(arguments).stdout
        return json.loads(stdout[stdout.index("{"):])


def _python_paths() -> List[str]:
    """This interpreter's site-packages (the venv's), for Debian's Python inside qgis_process."""
    paths = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    existing = os.environ.get("PYTHONPATH", "")
    return list(dict.fromkeys(p for p in paths + existing.split(os.pathsep) if p and "dist-packages" not in p))
