"""The analyst's path in the real QGIS desktop, under Xvfb, with screenshots.

    python -m demo.desktop [--out desktop_output] [--model MODEL.onnx]

Starts the QGIS desktop (``/usr/bin/qgis``) on a virtual screen (Debian's
``xvfb``; an existing ``DISPLAY`` is used as it is) with the plugin installed
in a private profile from the zip that ``make zip`` builds, as *Install from
ZIP* installs it, and does what a user does: loads the bundled example's
cloudy Sentinel-2 and Sentinel-1 layers, opens *Remove clouds (DSen2-CR)*
from Processing with those layers chosen and "Open output file after
running" ticked, runs it, runs it again, reloads the plugin as the Plugin
Manager does when a new version is installed, runs it a third time from a
fresh dialog, and quits. It saves ``dialog.png`` (the dialog before the
first run) and ``map.png`` (QGIS's window after the last run: the results
loaded and styled, each mask under its result), and ``report.json``: each
run's success, the loaded layers and their renderers, and every critical
message QGIS logged. It exits 1 when a run failed, an output was not loaded
and styled, the reload left the plugin's modules or provider behind, or
QGIS logged an error.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .cli import demo_arguments
from .example import DEMO_SCENE, bigearthnet_pairs, write_example
from .packaging import install_plugin_zip, plugin_sources, zip_plugin
from .qgis_process import PLUGIN_NAME, QgisProcess

QGIS = "/usr/bin/qgis"
SCREEN = "1440x900x24"
#: Runs from the dialog: all but the last one after another, then the plugin is reloaded and the last runs.
RUNS = 3
#: The desktop gets this long for all runs before it is stopped.
TIMEOUT_S = 240

#: Runs inside QGIS (``qgis --code``): the user's steps, one Qt timer tick after another.
STARTUP = r'''
import json, os, traceback
from qgis.core import Qgis, QgsApplication, QgsProcessingOutputLayerDefinition, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

CONFIG = json.loads(%(config)r)
PLUGIN = CONFIG["plugin"]
RUNS = CONFIG["runs"]
report = {"runs": [], "critical": [], "errors": []}
state = {}


def log_critical(message, tag, level):
    if level == Qgis.Critical:
        report["critical"].append(f"{tag}: {message}")


QgsApplication.messageLog().messageReceived.connect(log_critical)


def later(function, ms=500):
    def guarded():
        try:
            function()
        except Exception:
            report["errors"].append(traceback.format_exc())
            finish()
    QTimer.singleShot(ms, guarded)


def load_layers():
    state["s2"] = iface.addRasterLayer(CONFIG["s2"], "Sentinel-2 (cloudy)")
    state["s1"] = iface.addRasterLayer(CONFIG["s1"], "Sentinel-1 VV, VH")
    from cloudremoval.qgis_cloudremoval.algorithms.styles import true_colour
    true_colour((4, 3, 2))(state["s2"])  # as an analyst styles a 13-band L1C layer
    state["s1"].setOpacity(0.0)
    iface.setActiveLayer(state["s2"])
    iface.mapCanvas().setExtent(state["s2"].extent())
    later(lambda: open_dialog(1), 1500)


def parameters(run):
    project = QgsProject.instance()
    # The example's own cloud mask, as an analyst gives the product's: the learned detector, made for
    # 30 m L1C scenes, sees nothing on this small Level-2A patch, and keep-clear would keep it all.
    values = {"S2": state["s2"].id(), "S1": state["s1"].id(), "CLOUD_MASK": CONFIG["mask"],
              "OUTPUT": QgsProcessingOutputLayerDefinition(os.path.join(CONFIG["out"], f"cloud_free_{run}.tif"),
                                                           project),
              "OUTPUT_MASK": QgsProcessingOutputLayerDefinition(os.path.join(CONFIG["out"], f"cloud_mask_{run}.tif"),
                                                                project)}
    if CONFIG["model"]:
        values["MODEL"] = CONFIG["model"]
    return values


def open_dialog(number):
    import processing
    dialog = processing.createAlgorithmDialog("cloudremoval:removeclouds", parameters(number))
    dialog.algorithmFinished.connect(finished)
    dialog.show()
    state["dialog"] = dialog
    if number == 1:
        later(lambda: (dialog.grab().save(os.path.join(CONFIG["out"], "dialog.png")), run(1)), 1500)
    else:
        later(lambda: run(number), 1500)


def reload_plugin():
    # What the Plugin Manager does when a newer version is installed (and Plugin Reloader on each edit):
    # unload, drop the plugin's modules, import them again, start. A fresh dialog then runs the new code.
    import sys
    import qgis.utils
    state["dialog"].close()
    module = PLUGIN + ".qgis_cloudremoval.provider"
    before = sys.modules[module]
    report["plugin_file"] = os.path.realpath(sys.modules[PLUGIN].__file__)
    report["settings_dir"] = os.path.realpath(QgsApplication.qgisSettingsDirPath())
    qgis.utils.reloadPlugin(PLUGIN)
    report["modules_reimported"] = sys.modules[module] is not before
    registry = QgsApplication.processingRegistry()
    report["providers_after_reload"] = [provider.id() for provider in registry.providers()].count(PLUGIN)
    report["new_provider_registered"] = type(registry.providerById(PLUGIN)) is sys.modules[module].CloudRemovalProvider
    later(lambda: open_dialog(RUNS), 1000)


def run(number):
    state["run"] = number
    state["dialog"].setParameters(parameters(number))
    state["dialog"].runAlgorithm()


def finished(ok, results):
    project = QgsProject.instance()
    layers = [{"name": layer.name(), "source": layer.source(), "renderer": layer.renderer().type()}
              for layer in project.mapLayers().values()]
    tree = [node.layer().source() for node in project.layerTreeRoot().findLayers()]
    report["runs"].append({"run": state["run"], "ok": ok, "outputs": {key: str(value) for key, value in
                                                                      results.items() if key.startswith("OUTPUT")},
                           "layers": layers, "tree": tree})
    if state["run"] < RUNS - 1:
        later(lambda: run(state["run"] + 1), 1000)
    elif state["run"] == RUNS - 1:
        later(reload_plugin, 1000)
    else:
        later(screenshot_map, 1000)


def screenshot_map():
    state["dialog"].close()
    canvas = iface.mapCanvas()
    canvas.setExtent(state["s2"].extent())
    canvas.mapCanvasRefreshed.connect(lambda: later(save_map, 500))
    canvas.refreshAllLayers()


def save_map():
    if "map_saved" in state:
        return
    state["map_saved"] = True
    iface.mainWindow().grab().save(os.path.join(CONFIG["out"], "map.png"))
    finish()


def finish():
    with open(os.path.join(CONFIG["out"], "report.json"), "w") as stream:
        json.dump(report, stream, indent=1)
    QgsProject.instance().clear()  # as File > New: layers go while the application still stands
    iface.actionExit().trigger()


iface.mainWindow().showMaximized()
later(load_layers, 2000)
'''


def _start_display(out: Path):
    """An Xvfb display when none is set; returns (process or None, environment)."""
    environment = dict(os.environ)
    if environment.get("DISPLAY"):
        return None, environment
    if not shutil.which("Xvfb"):
        raise SystemExit("error: no DISPLAY and no Xvfb; install Debian's xvfb (sudo apt install xvfb)")
    for number in range(90, 110):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            break
    process = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", SCREEN, "-nolisten", "tcp"],
                               stdout=subprocess.DEVNULL, stderr=open(out / "xvfb.log", "w"))
    deadline = time.monotonic() + 20
    while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"error: Xvfb did not start (see {out / 'xvfb.log'})")
        time.sleep(0.1)
    environment["DISPLAY"] = f":{number}"
    return process, environment


def check(report: dict) -> list:
    """What went wrong, from the desktop's report; [] when every run loaded and styled its outputs."""
    problems = [f"QGIS logged: {message}" for message in report["critical"]]
    problems += [f"error in the desktop script: {error}" for error in report["errors"]]
    if [entry["run"] for entry in report["runs"]] != list(range(1, RUNS + 1)):
        problems.append(f"expected {RUNS} finished runs, got {len(report['runs'])}")
    if not report.get("plugin_file", "").startswith(report.get("settings_dir") or "?"):
        problems.append(f"the plugin ran from {report.get('plugin_file')}, not from the profile it was installed "
                        f"into ({report.get('settings_dir')})")
    if not report.get("modules_reimported"):
        problems.append("reloading the plugin did not import its modules again")
    if not report.get("new_provider_registered"):
        problems.append("after reloading the plugin, the registered provider is not the reloaded one")
    if report.get("providers_after_reload") != 1:
        problems.append(f"after reloading the plugin, {report.get('providers_after_reload')} providers "
                        f"'{PLUGIN_NAME}' are registered, expected 1")
    for entry in report["runs"]:
        if not entry["ok"]:
            problems.append(f"run {entry['run']} failed")
        renderers = {Path(layer["source"]).name: layer["renderer"] for layer in entry["layers"]}
        expected = {f"cloud_free_{entry['run']}.tif": "multibandcolor",
                    f"cloud_mask_{entry['run']}.tif": "paletted"}
        tree = [Path(source).name for source in entry["tree"]]
        result, mask = expected
        if result in tree and tree[tree.index(result) + 1:tree.index(result) + 2] != [mask]:
            problems.append(f"run {entry['run']}: {mask} is not right under {result} in the layer tree: {tree}")
        for name, renderer in expected.items():
            if renderers.get(name) != renderer:
                problems.append(f"run {entry['run']}: {name} loaded with renderer {renderers.get(name)}, "
                                f"expected {renderer}")
    return problems


def main(argv=None) -> int:
    args = demo_arguments(argv, __doc__, "desktop_output")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "dialog.png", "map.png"):
        (out / stale).unlink(missing_ok=True)
    pair = next(p for p in bigearthnet_pairs(out / "bigearthnet") if p.name == DEMO_SCENE)
    example = write_example(pair, out / "example")
    display, environment = _start_display(out)
    try:
        with tempfile.TemporaryDirectory(prefix="cloudremoval_desktop_") as profile:
            install_plugin_zip(zip_plugin(plugin_sources(Path(profile) / "zip")), Path(profile))
            qgis_process = QgisProcess(Path(profile))  # enables the installed plugin
            startup = Path(profile) / "startup.py"
            startup.write_text(STARTUP % {"config": json.dumps(
                {"s2": example.s2_cloudy, "s1": example.s1, "mask": example.truth_mask, "out": str(out),
                 "model": args.model, "plugin": PLUGIN_NAME, "runs": RUNS})})
            environment.update(QGIS_CUSTOM_CONFIG_PATH=profile, PYTHONPATH=qgis_process.env["PYTHONPATH"])
            environment.pop("QT_QPA_PLATFORM", None)
            print(f"starting the QGIS desktop on display {environment['DISPLAY']}")
            with open(out / "qgis.log", "w") as log:
                try:
                    completed = subprocess.run([QGIS, "--nologo", "--noversioncheck", "--code", str(startup)],
                                               env=environment, stdout=log, stderr=subprocess.STDOUT,
                                               timeout=TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    print(f"error: the desktop did not finish within {TIMEOUT_S} s; see {out / 'qgis.log'}",
                          file=sys.stderr)
                    return 1
    finally:
        if display is not None:
            display.terminate()
            display.wait()
    if not (out / "report.json").exists():
        print(f"error: QGIS exited ({completed.returncode}) without a report; see {out / 'qgis.log'}",
              file=sys.stderr)
        return 1
    problems = check(json.loads((out / "report.json").read_text()))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"dialog: {out / 'dialog.png'}\nmap:    {out / 'map.png'}\nreport: {out / 'report.json'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
