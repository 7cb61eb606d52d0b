"""The architectures ``training.train`` trains, and the one way a stored ``model_config`` rebuilds a network.

``model_config`` is what a network's ``config()`` returns: its architecture's name plus constructor
arguments. Checkpoints written before pix2pix existed carry no ``architecture`` key; they hold DSen2-CR.
"""

from typing import Dict, Optional, Union

from qgis_cloudremoval.core.model_info import ARCHITECTURE_LABELS

from . import model as dsen2cr
from . import pix2pix

#: Architecture name -> what users read in messages.
ARCHITECTURES = ARCHITECTURE_LABELS
#: Constructor arguments each architecture's ``model_config`` holds (besides ``architecture``).
CONFIG_KEYS = {dsen2cr.ARCHITECTURE: ("num_blocks", "num_features", "use_sar"),
               pix2pix.ARCHITECTURE: ("unet_depth", "num_features", "use_sar")}


#: A generator this project trains, checkpoints and exports.
Network = Union[dsen2cr.DSen2CR, pix2pix.UNetGenerator]


class NetworkConfigError(ValueError):
    """A ``model_config`` that describes no network this project builds; the message says what is wrong."""


def architecture_of(config: Dict) -> str:
    """The architecture a checkpoint's model config names (DSen2-CR for checkpoints older than the key)."""
    return config.get("architecture", dsen2cr.ARCHITECTURE)


def describe(config: Dict) -> str:
    """``pix2pix unet_depth=8 num_features=64 use_sar=True`` for messages."""
    name = architecture_of(config)
    return " ".join([ARCHITECTURES.get(name, str(name))]
                    + [f"{key}={value}" for key, value in config.items() if key != "architecture"])


def build(config: Optional[Dict]) -> Network:
    """The network ``config`` describes (fresh weights), refusing anything else with :class:`NetworkConfigError`."""
    if not isinstance(config, dict):
        raise NetworkConfigError(f"model_config must be a mapping, found {config!r}")
    name = architecture_of(config)
    if name not in CONFIG_KEYS:
        raise NetworkConfigError(f"unknown architecture {name!r}; this version builds {', '.join(CONFIG_KEYS)}")
    keys = CONFIG_KEYS[name]
    if set(config) - {"architecture"} != set(keys):
        raise NetworkConfigError(f"a {ARCHITECTURES[name]} model_config has exactly the keys architecture, "
                                 f"{', '.join(keys)}; found {config!r}")
    size, features, use_sar = (config[key] for key in keys)
    smallest = 0 if name == dsen2cr.ARCHITECTURE else 2
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= smallest and isinstance(features, int)
            and not isinstance(features, bool) and features > 0 and isinstance(use_sar, bool)):
        raise NetworkConfigError(f"invalid model_config {config!r}")
    if name == pix2pix.ARCHITECTURE:
        return pix2pix.UNetGenerator(depth=size, num_features=features, use_sar=use_sar)
    return dsen2cr.DSen2CR(num_blocks=size, num_features=features, use_sar=use_sar)
